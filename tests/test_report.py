"""The evaluation report: TFMA's metrics are consistent, and the HTML renders in a real browser."""
import os
import re
import shutil
import subprocess

import pytest

from pipeline import report
from model_code.metrics import confusion_name, dice_name, iou_name
from model_code.labels import CLASS_NAMES

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


def test_tfma_metrics_are_consistent_with_each_other(smoke_runs):
    _, first, _, _ = smoke_runs
    m = first.metrics
    ious = [m[iou_name(name)] for name in CLASS_NAMES]
    # Mean IoU averages the classes that occur; all three occur in the smoke test split.
    assert m["mean_iou"] == pytest.approx(sum(ious) / 3, abs=1e-5)
    for name, iou in zip(CLASS_NAMES, ious):
        assert m[dice_name(name)] == pytest.approx(2 * iou / (1 + iou), abs=1e-5)
        row = [m[confusion_name(name, other)] for other in CLASS_NAMES]
        assert sum(row) == pytest.approx(1.0, abs=1e-5)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no Chromium found: install Debian's `chromium` package (.ci/run does)")


def _dump_dom(page, tmp_path):
    result = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", f"file://{page}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_pipeline_writes_its_report_as_an_artifact_that_renders_in_chromium(smoke_runs, tmp_path):
    paths, first, _, second = smoke_runs
    assert first.report_path.startswith(paths["pipeline_root"])
    page = os.path.join(os.path.dirname(paths["pipeline_root"]), "report.html")
    with open(page, "rb") as copy, open(second.report_path, "rb") as artifact:
        assert copy.read() == artifact.read()  # the latest run's report
    dom = _dump_dom(page, tmp_path)
    assert re.search(r'id="verdict"[^>]*>BLESSED<', dom)
    assert "The Pusher step pushes blessed models." in dom
    assert 'class="metrics"' in dom and "mean_iou" in dom
    assert 'class="confusion"' in dom and "By species" in dom and "By breed" in dom
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert images >= 3  # curves + gallery
    assert 'data-broken-images="0"' in dom
    assert re.search(r'id="data-checks">40 examples checked, 0 quarantined', dom)


def test_report_command_rerenders_an_earlier_run_with_its_push(smoke_runs, tmp_path, capsys):
    paths, first, _, _ = smoke_runs
    code = report.main(["--pipeline-root", paths["pipeline_root"], "--run", first.run_id,
                        "--metadata-path", paths["metadata_path"], "--out", str(tmp_path)])
    assert code == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f"evaluation of run {first.run_id}" in page
    assert f"Pushed to <code>{first.pushed_destination}</code>" in page


def test_report_command_names_a_missing_store(tmp_path, capsys):
    code = report.main(["--pipeline-root", str(tmp_path / "root"), "--out", str(tmp_path)])
    assert code == 2
    assert "no ML Metadata store" in capsys.readouterr().err


def test_a_note_is_said_first(smoke_runs):
    import local_runner
    from components.report_page import render
    from pipeline.report import report_inputs

    _, first, _, _ = smoke_runs
    inputs = report_inputs(first)
    inputs.note = local_runner.SYNTHETIC_NOTE
    page = render(inputs)
    assert page.index('id="note"') < page.index('id="verdict"')
    assert "learned synthetic pets" in page


def test_text_from_artifacts_and_runners_shows_as_text_not_markup(smoke_runs, tmp_path):
    """The template autoescapes: a quarantine reason and a note holding markup stay text."""
    import dataclasses
    import json

    from components import report_page
    from pipeline.report import report_inputs

    _, first, _, _ = smoke_runs
    evil = "<script>alert(1)</script>"
    shown = "&lt;script&gt;alert(1)&lt;/script&gt;"
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    (quarantine / report_page.QUARANTINE_SUMMARY).write_text(
        json.dumps({"checked": 2, "quarantined": 1, "reasons": {evil: 1}}))
    page = report_page.render(dataclasses.replace(report_inputs(first), note=evil,
                                                  quarantine_uri=str(quarantine)))
    assert page.count("<script>") == 1  # the page's own image check, nothing else
    assert f'<p id="note" class="bad"><b>{shown}</b></p>' in page
    assert f"<td>{shown}</td><td>1</td>" in page


@pytest.mark.parametrize("data_dir", [None, "my_pets"])
def test_local_runs_on_synthetic_pets_pass_the_note_to_the_report_step(data_dir, tmp_path):
    import local_runner
    from model_code.config import get_preset

    args = local_runner.parse_args(["--data-dir", data_dir] if data_dir else [])
    pipeline = local_runner.build_pipeline(
        args, get_preset("smoke"), str(tmp_path / "data"), "in_memory", str(tmp_path / "root"),
        str(tmp_path / "serving"), str(tmp_path / "metadata.sqlite"))
    step = next(c for c in pipeline.components if c.id == "EvaluationReport")
    assert step.exec_properties["note"] == ("" if data_dir else local_runner.SYNTHETIC_NOTE)


def _copy_tree(source, target):
    import tensorflow as tf

    for folder, _, names in tf.io.gfile.walk(source):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), source)
            tf.io.gfile.makedirs(os.path.dirname(os.path.join(target, relative)))
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, relative))


def test_the_report_reads_artifacts_through_tensorflow_filesystems(smoke_runs):
    """On a cluster the artifact folders are gs:// URIs; TensorFlow's in-memory filesystem
    (ram://) stands in for them, as Python's own file functions cannot read either."""
    from components import report_page

    _, first, _, _ = smoke_runs
    examples = first.inputs["Evaluator"]["examples"]
    _copy_tree(first.outputs["Trainer"]["model_run"], "ram://report-test/model_run")
    _copy_tree(examples, "ram://report-test/examples")
    curves = report_page._curves("ram://report-test/model_run")  # noqa: SLF001
    assert {"epoch_loss", "epoch_mean_iou"} <= set(curves)
    serving = os.path.join(first.outputs["Trainer"]["model"], "Format-Serving")
    remote = report_page._gallery(serving, "ram://report-test/examples", "test")  # noqa: SLF001
    local = report_page._gallery(serving, examples, "test")  # noqa: SLF001
    assert len(remote) == len(local) > 0
