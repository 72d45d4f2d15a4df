"""Continuous training, as the README walks through it: spans arrive, each run ingests the newest.

One sequence of real local runs (smoke preset) over a data folder that grows, shared by the tests:
  1. span-1: the first run trains cold;                 again: "No new span", nothing runs;
  2. span-2 whose examples are all bad: quarantine stops the run (exit 2), nothing pushed;
     span-2 written again, good: the run warm-starts from run 1's blessed model, window 1-2;
  3. span-3 with 90 % cats: the run warns of drift and trains on the window 2-3
     (`--window-spans 2`);
  4. span-3 rewritten in place (a file's modification time): TFX's fingerprint changes, so it is
     ingested again and SpanWindow says so; with `--on-drift stop` the same drift now ends the
     run before training (exit 2), nothing pushed.
"""
import contextlib
import glob
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

import local_runner
from pipeline import dataset
from pipeline.run_summary import summarize_latest_run

SPAN_EXAMPLES = 40


def _bad_span(data_dir, span):
    """A span whose every example has an undecodable image."""
    folder = os.path.join(data_dir, f"span-{span}", "oxford_iiit_pet", "4.0.0")
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "oxford_iiit_pet-train.tfrecord-00000")) as w:
        for i in range(10):
            example = tf.train.Example()
            for key, value in (("image", b"not an image"), ("segmentation_mask", b"nor a mask"),
                               ("file_name", f"bad_{i}.jpg".encode())):
                example.features.feature[key].bytes_list.value.append(value)
            w.write(example.SerializeToString())


def _run_in_process(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = local_runner.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    base = tmp_path_factory.mktemp("continuous")
    data = str(base / "spans")
    paths = {"pipeline_root": str(base / "root"), "serving_dir": str(base / "serving"),
             "metadata_path": str(base / "metadata.sqlite"), "data": data}
    argv = ["--preset", "smoke", "--data-dir", data, "--pipeline-root", paths["pipeline_root"],
            "--serving-dir", paths["serving_dir"], "--metadata-path", paths["metadata_path"]]
    runs = {}

    def versions():
        return sorted(os.listdir(paths["serving_dir"])) if os.path.isdir(
            paths["serving_dir"]) else []

    def record(name, code, out, err):
        runs[name] = {"code": code, "out": out, "err": err, "versions": versions()}
        if code == 0 and "No new span" not in out:
            runs[name]["summary"] = summarize_latest_run(paths["metadata_path"])

    dataset.prepare_synthetic_span(data, 1, SPAN_EXAMPLES, seed=1)
    done = subprocess.run([sys.executable, local_runner.__file__, *argv], capture_output=True,
                          text=True, check=False)
    record("first", done.returncode, done.stdout, done.stderr)
    record("again", *_run_in_process(argv))
    _bad_span(data, 2)
    record("bad_span", *_run_in_process(argv))
    shutil.rmtree(os.path.join(data, "span-2"))
    dataset.prepare_synthetic_span(data, 2, SPAN_EXAMPLES, seed=1)
    record("second", *_run_in_process(argv))
    dataset.prepare_synthetic_span(data, 3, SPAN_EXAMPLES, seed=1, cat_share=0.9)
    record("third", *_run_in_process([*argv, "--window-spans", "2"]))
    rewritten = glob.glob(os.path.join(data, "span-3", "**", "*.tfrecord*"), recursive=True)[0]
    os.utime(rewritten, (os.path.getatime(rewritten), os.path.getmtime(rewritten) + 60))
    record("rewritten", *_run_in_process([*argv, "--window-spans", "2", "--on-drift", "stop"]))
    return paths, runs


def _report(summary):
    with open(summary.report_path, encoding="utf-8") as f:
        return f.read()


def test_the_first_run_ingests_span_1_and_trains_cold(walkthrough):
    _, runs = walkthrough
    first = runs["first"]
    assert first["code"] == 0, first["err"][-3000:]
    assert "this run ingests span 1" in first["out"]
    assert "Cold start: no blessed model to start from" in first["out"]
    assert "Drift: span 1 is the first; nothing to compare it with" in first["out"]
    assert len(first["versions"]) == 1
    assert first["summary"].window["window"] == [1]
    assert '<p id="spans">This run ingested span 1 and trained on the window of spans 1 ' in (
        _report(first["summary"]))


def test_a_rerun_without_a_new_span_says_so_and_does_nothing(walkthrough):
    _, runs = walkthrough
    again = runs["again"]
    assert again["code"] == 0
    assert "No new span: span 1 is unchanged since run" in again["out"]
    assert again["versions"] == runs["first"]["versions"]


def test_an_all_bad_span_stops_its_run_and_the_next_good_span_runs_normally(walkthrough):
    _, runs = walkthrough
    bad = runs["bad_span"]
    assert bad["code"] == 2
    assert bad["err"].startswith("error: ExampleQuarantine: ") and "Traceback" not in bad["err"]
    assert bad["versions"] == runs["first"]["versions"]
    assert runs["second"]["code"] == 0, runs["second"]["err"][-3000:]
    assert runs["second"]["summary"].window["window"] == [1, 2]  # the bad span never stored


def test_the_second_run_warm_starts_from_the_first_runs_blessed_model(walkthrough):
    _, runs = walkthrough
    first, second = runs["first"]["summary"], runs["second"]["summary"]
    assert first.blessed
    start = second.start
    assert start["warm"] and start["from"] == os.path.join(
        first.outputs["Trainer"]["model"], "Format-Serving")
    assert f"Warm start: from {start['from']}" in runs["second"]["out"]
    assert "Warm start from the latest blessed model" in _report(second)
    window = second.window
    assert window["window"] == [1, 2] and set(window["counts"]) == {"1", "2"}
    assert not any(d["drifted"] for d in window["drift"] if d["feature"] == "species")
    assert len(runs["second"]["versions"]) == 2


def test_a_shifted_span_is_flagged_and_stopping_on_drift_trains_nothing(walkthrough):
    _, runs = walkthrough
    third = runs["third"]
    assert third["code"] == 0, third["err"][-3000:]
    window = third["summary"].window
    assert window["window"] == [2, 3] and window["ingested"] == [1, 2, 3]
    species = [d for d in window["drift"] if d["feature"] == "species"][0]
    assert species["drifted"] and species["value"] > species["threshold"]
    assert "Drift: span 3 vs span 2: " in third["out"] and "(drift) [warn]" in third["out"]
    page = _report(third["summary"])
    assert '<p id="drift" class="bad">Drift: span 3 vs span 2: ' in page
    assert "<td>species</td><td>Jensen-Shannon divergence</td>" in page

    stopped = runs["rewritten"]  # the same span again, now with --on-drift stop
    assert stopped["code"] == 2
    assert stopped["err"].startswith("error: SpanWindow: span 3 vs span 2: ")
    assert "species" in stopped["err"] and "(drift)" in stopped["err"]
    assert "Traceback" not in stopped["err"]
    assert stopped["versions"] == third["versions"]


def test_the_span_store_remembers_every_good_span(walkthrough):
    paths, _ = walkthrough
    store = os.path.join(paths["pipeline_root"], "span_store")
    records = {os.path.basename(p): json.load(open(p))
               for p in glob.glob(os.path.join(store, "span-*.json"))}
    assert sorted(records) == ["span-1.json", "span-2.json", "span-3.json"]
    assert all(os.path.isdir(r["examples"]) and r["fingerprint"] for r in records.values())


def test_a_span_rewritten_in_place_is_ingested_again_and_said_so(walkthrough):
    _, runs = walkthrough
    rewritten = runs["rewritten"]
    assert "No new span" not in rewritten["out"]
    assert ("SpanWindow: span 3 changed since a run ingested it (its files' fingerprint "
            "differs)") in rewritten["out"]


def _tfrecords(folder):
    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, "pets.tfrecord")) as writer:
        example = tf.train.Example()
        for key in ("image", "segmentation_mask"):
            example.features.feature[key].bytes_list.value.append(b"x")
        writer.write(example.SerializeToString())


TFDS = os.path.join("oxford_iiit_pet", "4.0.0")


@pytest.mark.parametrize("folders, message", [
    (["span-1/" + TFDS, "span-2"], "span-2: the newest span holds no TFRecord files"),
    (["span-1/" + TFDS, "notes"], "notes: not a span folder beside the spans; name spans "
                                  "span-<N>"),
    (["span-1/" + TFDS, "span-04/" + TFDS], "span-04: not a span folder beside the spans"),
    (["span_1"], "span_1: not a span folder beside the spans"),
    (["span-1/" + TFDS, "span-2/"], "spans in two layouts"),
])
def test_a_wrong_span_folder_is_one_line_before_any_work(tmp_path, capsys, folders, message):
    for folder in folders:  # "a/b" or "a/": TFRecords in it; "a": an empty folder
        if "/" in folder:
            _tfrecords(str(tmp_path / folder))
        else:
            os.makedirs(tmp_path / folder)
    code = local_runner.main(["--preset", "smoke", "--data-dir", str(tmp_path),
                              "--pipeline-root", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_gaps_are_fine_and_folders_that_only_start_with_span_are_no_spans(tmp_path):
    from pipeline import spans

    for folder in ("span-1/" + TFDS, "span-4/" + TFDS):
        _tfrecords(str(tmp_path / "gaps" / folder))
    layout = spans.find_spans(str(tmp_path / "gaps"))
    assert layout.spans == (1, 4) and layout.newest == 4 and layout.layout == "tfds"
    assert layout.pattern == "span-{SPAN}/oxford_iiit_pet/4.0.0/*.tfrecord*"
    _tfrecords(str(tmp_path / "plain"))
    os.makedirs(tmp_path / "plain" / "spaniel")
    assert spans.find_spans(str(tmp_path / "plain")) is None


def _record(store, span, **fields):
    os.makedirs(store, exist_ok=True)
    record = {"span": span, "transformed": f"/elsewhere/Transform/{span}", **fields}
    with open(os.path.join(store, f"span-{span}.json"), "w") as f:
        json.dump(record, f)


def test_spans_that_arrive_together_are_named_before_the_run(tmp_path):
    from pipeline import spans

    for span in (1, 2, 3):
        _tfrecords(str(tmp_path / "data" / f"span-{span}"))
    layout = spans.find_spans(str(tmp_path / "data"))
    root = tmp_path / "root"
    store = spans.store_path(str(root))
    assert "span-1, span-2 will not be trained on" in local_runner.not_ingested(layout, str(root))
    _record(store, 1)
    note = local_runner.not_ingested(layout, str(root))
    assert note.startswith("Note: span-2 will not be trained on: a run ingests only the newest")
    _record(store, 2)
    assert local_runner.not_ingested(layout, str(root)) == ""


@pytest.mark.parametrize("text, problem", [
    ('{"span": 2, "transformed": "/x"', "not JSON"),
    ('{"span": 3, "transformed": "/x"}', "not a record of span 2"),
    ('{"span": 2}', "no folder of transformed examples")])
def test_an_unusable_span_store_record_stops_the_run_before_it_starts(tmp_path, text, problem):
    """A hand-edited or truncated span-N.json: one line naming it and what to do, exit 2."""
    from pipeline import spans

    for span in (1, 2, 3):
        _tfrecords(str(tmp_path / "data" / f"span-{span}"))
    store = spans.store_path(str(tmp_path / "root"))
    _record(store, 1)
    with open(os.path.join(store, "span-2.json"), "w") as f:
        f.write(text)
    code, out, err = _run_in_process(
        ["--preset", "smoke", "--data-dir", str(tmp_path / "data"), "--pipeline-root",
         str(tmp_path / "root"), "--metadata-path", str(tmp_path / "metadata.sqlite"),
         "--serving-dir", str(tmp_path / "serving")])
    assert code == 2 and "Traceback" not in err, err
    line = err.strip()
    assert line.startswith(f"error: the span store's {os.path.join(store, 'span-2.json')} is "
                           f"unreadable ({problem}") and line.count("\n") == 0
    assert "restore it from a copy, or delete it to leave span 2 out" in line
    assert not os.path.exists(tmp_path / "root" / "ImportExampleGen")  # nothing ran


def test_a_blessed_model_of_another_width_means_a_cold_start_with_the_reason(tmp_path):
    import dataclasses

    from model_code import precision, warm_start
    from model_code.config import SMOKE

    base = str(tmp_path / "Format-Serving")
    precision.write_record(base, "float32", "test",
                           config=dataclasses.replace(SMOKE, num_filters_start=8).to_dict())
    built = []
    start = warm_start.choose(base, SMOKE, lambda: built.append(1))
    assert start.weights is None and not built  # decided from the record, nothing loaded
    assert start.line() == ("Cold start: the blessed model's U-Net differs (num_filters_start 8 "
                            "there, 4 here)")
    never = warm_start.choose(base, dataclasses.replace(SMOKE, warm_start="never"), None)
    assert never.line() == "Cold start: warm start is off (--warm-start never)"

    # No record to decide from (a model trained elsewhere): its checkpoint does not fit.
    from model_code.unet import build_unet

    other = str(tmp_path / "other")
    build_unet(dataclasses.replace(SMOKE, num_filters_start=8)).save_weights(
        os.path.join(other, "variables", "variables"))
    start = warm_start.choose(other, SMOKE, lambda: build_unet(SMOKE))
    assert start.weights is None and start.line().startswith(
        "Cold start: the blessed model's weights do not fit (Received incompatible tensor with "
        "shape (8,)")
    assert "\n" not in start.line()
