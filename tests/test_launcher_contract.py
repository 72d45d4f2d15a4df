"""The compiled packages run step by step the way Vertex AI Pipelines and Kubeflow Pipelines run them.

`kubeflow_runner.py` compiles each package exactly as a user would (smoke preset, local folders
for pipeline root, data and serving); tests/launcher_emulator.py then executes every step's
container command from the package, in DAG order, with the ExecutorInput each platform's launcher
builds (what is emulated, and from which sources, is in that module's docstring). Vertex runs
twice, so its resolver finds the first run's blessed model and the Evaluator compares against it
(with Vertex's caching, the second run re-executes only what depends on the resolver).

Both packages are compiled with --tune (2 trials of 1 epoch), so the Tuner's hand-over to the
Trainer crosses the launcher too.

Beam runs in memory here (`--beam-arg`s at compile time, as a user may add them) to keep the test
short; the launcher contract does not depend on Beam's runner.
"""
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


def _compile(tmp_path, data_root, target):
    package = str(tmp_path / f"pipeline{kubeflow_runner.TARGETS[target]}")
    argv = ["--pipeline-root", str(tmp_path / "root"), "--data-root", data_root,
            "--serving-dir", str(tmp_path / "serving"), "--image", "pets-unet:test",
            "--preset", "smoke", "--target", target, "--output", package, "--tune", *FAST_BEAM]
    assert kubeflow_runner.main(argv) == 0
    return package


@pytest.fixture(scope="module")
def data_root(tfds_pets_dir):
    return os.path.join(tfds_pets_dir, "oxford_iiit_pet", "4.0.0")


def _launcher(tmp_path, data_root, mode):
    package = _compile(tmp_path, data_root, mode)
    return Launcher(package, str(tmp_path / "root"), mode, python_env(), str(tmp_path / "work"))


def _check_run(results, tmp_path):
    pushed = results["Pusher"].outputs["pushed_model"][0]
    assert pushed.metadata["pushed"] == 1.0
    destination = pushed.metadata["pushed_destination"]
    assert os.path.dirname(destination) == str(tmp_path / "serving")
    assert os.path.isfile(os.path.join(destination, "saved_model.pb"))
    report = results["EvaluationReport"].outputs["report"][0]
    assert schema_title(report.type) == "system.HTML"
    assert os.path.isfile(report.uri)  # one file at the artifact's URI, as the UIs expect
    page = open(report.uri, encoding="utf-8").read()
    assert 'id="verdict" class="good">BLESSED<' in page
    assert '<p id="tuning">2 trials, best first' in page
    trials = json.load(open(os.path.join(results["Tuner"].outputs["tuner_results"][0].uri,
                                         "tuner_results.json")))
    model_dir = path_utils.serving_model_dir(results["Trainer"].outputs["model"][0].uri)
    record = precision.read_record(model_dir)
    assert record["hyperparameters"] == {name: trials[0][name] for name in SEARCHED}
    assert 'id="data-checks">40 examples checked, 0 quarantined' in page
    return page


def test_vertex_runs_every_step_and_the_second_run_compares_with_the_first(
        tmp_path, data_root):
    launcher = _launcher(tmp_path, data_root, VERTEX)
    first = launcher.run()
    commands = [step.command[:3] for step in first.values() if step.command]
    assert len(commands) == 11  # 11 containers, the Tuner's included (+ 2 resolver steps)
    assert all(c == ["python", "-m", "pets_unet.entrypoint"] for c in commands)
    assert first["latest_blessed_model_resolver-model-resolver"].outputs["model"] == []
    page = _check_run(first, tmp_path)
    assert "No blessed baseline yet" in page

    second = launcher.run()  # inputs unchanged: Vertex serves the data steps and Trainer from cache
    assert second["Tuner"].cached and second["Trainer"].cached
    assert not second["Evaluator"].cached
    baseline = second["latest_blessed_model_resolver-model-resolver"].outputs["model"]
    assert [a.uri for a in baseline] == [first["Trainer"].outputs["model"][0].uri]
    blessing = second["Evaluator"].outputs["blessing"][0].metadata
    assert blessing["baseline_model"] == first["Trainer"].outputs["model"][0].uri
    page = _check_run(second, tmp_path)
    assert "No blessed baseline yet" not in page
    assert re.search(r"<tr><td>mean_iou</td><td>[0-9.]+</td><td>[0-9.]+</td>", page)
    # Vertex hands over declared types: the entrypoint passes TFX the input untouched.
    assert "input types restored" not in open(second["Evaluator"].log_path).read()


def test_kubeflow_runs_every_step_with_its_launchers_inputs(tmp_path, data_root):
    launcher = _launcher(tmp_path, data_root, KUBEFLOW)
    assert not any("resolver" in name for name in launcher.task_order())
    results = launcher.run()
    commands = [step.command[:4] for step in results.values()]
    assert all(c == ["python", "-m", "pets_unet.entrypoint", "--kubeflow"] for c in commands)
    page = _check_run(results, tmp_path)
    assert "No blessed baseline yet" in page
    log = open(results["Evaluator"].log_path).read()
    assert "input types restored from the step's declared inputs" in log
    assert "model: (no type) -> tfx.Model" in log
