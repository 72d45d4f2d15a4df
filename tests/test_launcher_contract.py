"""The compiled packages run step by step the way Vertex AI Pipelines and Kubeflow Pipelines run them.

`kubeflow_runner.py` compiles each package exactly as a user would (smoke preset, local folders
for pipeline root, data and serving); tests/launcher_emulator.py then executes every step's
container command from the package, in DAG order, with the ExecutorInput each platform's launcher
builds (what is emulated, and from which sources, is in that module's docstring).

Both packages run over a data folder of spans. Vertex: span 1; span 1 again, unchanged, where its
resolver finds the first run's blessed model and the Evaluator compares against it (Vertex's cache
serves the data steps); then span 2 arrives, and the run ingests span 2 alone, trains
on the window of spans 1-2 and warm-starts from the latest blessed model. Kubeflow: span 1, then
span 2 (the entrypoint resolves `{SPAN}`, as Kubeflow runs no lifecycle hook); with no Resolver
there, it trains cold and says why. The two sequences run at the same time, one thread each
(their steps are processes, mostly single-threaded), so the module takes about as long as the
longer one. A data folder without spans compiles to the same DAG minus SpanWindow and the warm
start (tests/test_kubeflow_runner.py) and runs locally in tests/test_pipeline_e2e.py.

The Kubeflow package is compiled with --tune (2 trials of 1 epoch), so the Tuner's hand-over to
the Trainer crosses the launcher that drops input types.

Beam runs in memory here (`--beam-arg`s at compile time, as a user may add them) to keep the test
short; the launcher contract does not depend on Beam's runner.
"""
import concurrent.futures
import json
import os
import re

import pytest
from tfx.utils import path_utils

import kubeflow_runner
from model_code import precision
from model_code.hyperparameters import SEARCHED
from launcher_emulator import KUBEFLOW, VERTEX, Launcher, python_env, schema_title

FAST_BEAM = ["--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1"]


SPAN_EXAMPLES = 40


def _launcher(folder, data_root, target, *extra):
    """Compiles the package as a user would (kubeflow_runner.main) and returns its launcher."""
    package = str(folder / f"pipeline{kubeflow_runner.TARGETS[target]}")
    argv = ["--pipeline-root", str(folder / "root"), "--data-root", data_root,
            "--serving-dir", str(folder / "serving"), "--image", "pets-unet:test",
            "--preset", "smoke", "--target", target, "--output", package, *FAST_BEAM, *extra]
    assert kubeflow_runner.main(argv) == 0
    return Launcher(package, str(folder / "root"), target, python_env(), str(folder / "work"))


def _spans(folder):
    """A data folder holding span-1, and span-2 written beside it, to move in later."""
    from pipeline import dataset

    dataset.prepare_synthetic_span(str(folder / "spans"), 1, SPAN_EXAMPLES, seed=4)
    dataset.prepare_synthetic_span(str(folder / "later"), 2, SPAN_EXAMPLES, seed=4)
    return str(folder / "spans"), str(folder / "later" / "span-2")


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    """Every run of both packages, {"vertex": {...}, "kubeflow": {...}}, over a data folder of
    spans: span 1, (on Vertex: span 1 again, unchanged), span 2."""
    folders = {mode: tmp_path_factory.mktemp(mode) for mode in (VERTEX, KUBEFLOW)}
    data = {mode: _spans(folder) for mode, folder in folders.items()}
    launchers = {VERTEX: _launcher(folders[VERTEX], data[VERTEX][0], VERTEX),
                 KUBEFLOW: _launcher(folders[KUBEFLOW], data[KUBEFLOW][0], KUBEFLOW, "--tune")}

    def runs(mode):
        launcher, (spans, span_2) = launchers[mode], data[mode]
        done = {"launcher": launcher, "folder": folders[mode], "span_1": launcher.run()}
        if mode == VERTEX:
            done["unchanged"] = launcher.run()
        os.rename(span_2, os.path.join(spans, "span-2"))  # span 2 arrives
        done["span_2"] = launcher.run()
        return done

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {mode: pool.submit(runs, mode) for mode in (VERTEX, KUBEFLOW)}
        return {mode: future.result() for mode, future in futures.items()}


def _check_run(results, folder):
    pushed = results["Pusher"].outputs["pushed_model"][0]
    assert pushed.metadata["pushed"] == 1.0
    destination = pushed.metadata["pushed_destination"]
    assert os.path.dirname(destination) == str(folder / "serving")
    assert os.path.isfile(os.path.join(destination, "saved_model.pb"))
    report = results["EvaluationReport"].outputs["report"][0]
    assert schema_title(report.type) == "system.HTML"
    assert os.path.isfile(report.uri)  # one file at the artifact's URI, as the UIs expect
    page = open(report.uri, encoding="utf-8").read()
    assert 'id="verdict" class="good">BLESSED<' in page
    if "Tuner" in results:
        assert '<p id="tuning">2 trials, best first' in page
        trials = json.load(open(os.path.join(results["Tuner"].outputs["tuner_results"][0].uri,
                                             "tuner_results.json")))
        record = _training_record(results)
        assert record["hyperparameters"] == {name: trials[0][name] for name in SEARCHED}
    assert 'id="data-checks">40 examples checked, 0 quarantined' in page
    return page


def test_vertex_runs_every_step_and_the_second_run_compares_with_the_first(contract):
    runs = contract[VERTEX]
    first, folder = runs["span_1"], runs["folder"]
    commands = [step.command[:3] for step in first.values() if step.command]
    assert len(commands) == 11  # 11 containers (+ 2 resolver steps)
    assert all(c == ["python", "-m", "pets_unet.entrypoint"] for c in commands)
    assert first["latest_blessed_model_resolver-model-resolver"].outputs["model"] == []
    page = _check_run(first, folder)
    assert "No blessed baseline yet" in page

    # Inputs unchanged: Vertex serves the data steps from its cache. The Trainer
    # runs again: its warm-start input, the latest blessed model, is now the first run's
    # (README, "On Vertex AI and Kubeflow Pipelines").
    second = runs["unchanged"]
    cached = {name for name, step in second.items() if step.cached}
    assert cached >= {"ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "Transform",
                      "SpanWindow"}
    assert not second["Trainer"].cached and not second["Evaluator"].cached
    baseline = second["latest_blessed_model_resolver-model-resolver"].outputs["model"]
    assert [a.uri for a in baseline] == [first["Trainer"].outputs["model"][0].uri]
    blessing = second["Evaluator"].outputs["blessing"][0].metadata
    assert blessing["baseline_model"] == first["Trainer"].outputs["model"][0].uri
    page = _check_run(second, folder)
    assert "No blessed baseline yet" not in page
    assert re.search(r"<tr><td>mean_iou</td><td>[0-9.]+</td><td>[0-9.]+</td>", page)
    # Vertex hands over declared types: the entrypoint passes TFX the input untouched.
    assert "input types restored" not in open(second["Evaluator"].log_path).read()


def test_kubeflow_runs_every_step_with_its_launchers_inputs(contract):
    runs = contract[KUBEFLOW]
    assert not any("resolver" in name for name in runs["launcher"].task_order())
    results = runs["span_1"]
    commands = [step.command[:4] for step in results.values()]
    assert all(c == ["python", "-m", "pets_unet.entrypoint", "--kubeflow"] for c in commands)
    page = _check_run(results, runs["folder"])
    assert "No blessed baseline yet" in page
    log = open(results["Evaluator"].log_path).read()
    assert "input types restored from the step's declared inputs" in log
    assert "model: (no type) -> tfx.Model" in log
    log = open(results["ImportExampleGen"].log_path).read()
    assert "input pattern resolved by TFX's ExampleGen driver, run here" in log


def _training_record(results):
    return precision.read_record(path_utils.serving_model_dir(
        results["Trainer"].outputs["model"][0].uri))


def _window(results):
    return json.load(open(os.path.join(results["SpanWindow"].outputs["window"][0].uri,
                                       "window.json")))


@pytest.mark.parametrize("mode", [VERTEX, KUBEFLOW])
def test_two_runs_over_two_spans_ingest_the_new_span_and_train_on_the_window(contract, mode):
    runs = contract[mode]
    first, second = runs["span_1"], runs["span_2"]
    assert first["ImportExampleGen"].outputs["examples"][0].metadata["span"] == 1
    assert _window(first)["window"] == [1]
    assert first["Pusher"].outputs["pushed_model"][0].metadata["pushed"] == 1.0

    examples = second["ImportExampleGen"].outputs["examples"][0]
    assert examples.metadata["span"] == 2 and not second["ImportExampleGen"].cached
    window = _window(second)
    assert window["span"] == 2 and window["window"] == [1, 2]
    assert sorted(window["counts"]) == ["1", "2"]
    start = _training_record(second)["warm_start"]
    page = open(second["EvaluationReport"].outputs["report"][0].uri, encoding="utf-8").read()
    assert "This run ingested span 2 and trained on the window of spans 1, 2" in page
    if mode == VERTEX:  # from the latest blessed model: the unchanged run's
        assert start["warm"]
        assert start["from"] == os.path.join(runs["unchanged"]["Trainer"].outputs["model"][0].uri,
                                             "Format-Serving")
        assert "Warm start from the latest blessed model" in page
    else:  # no Resolver on Kubeflow: no baseline, no warm start, and the record says why
        assert not start["warm"] and "no blessed model to start from" in start["reason"]
        assert "Cold start: no blessed model to start from" in page
