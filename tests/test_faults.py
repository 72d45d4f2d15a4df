"""Faults: a killed run resumes from cache, pushes stay atomic, runs sharing a root stay apart."""
import json
import os
import signal
import subprocess
import sys

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils, proto_utils

import local_runner
from components.atomic_pusher import STAGING, AtomicPusherExecutor
from pipeline.run_summary import summarize_latest_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM = ["ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "SchemaGen",
            "ExampleValidator", "Transform"]


def _argv(tfds_pets_dir, out, *extra):
    return ["--preset", "smoke", "--data-dir", tfds_pets_dir,
            "--pipeline-root", str(out / "root"), "--serving-dir", str(out / "serving"),
            "--metadata-path", str(out / "metadata.sqlite"), *extra]


def _versions(serving_dir):
    return sorted(name for name in os.listdir(serving_dir) if not name.startswith("."))


def test_run_killed_during_training_resumes_and_stays_consistent(tfds_pets_dir, tmp_path):
    argv = _argv(tfds_pets_dir, tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "local_runner.py"), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, cwd=ROOT, start_new_session=True)
    try:
        for line in process.stdout:
            if line.startswith("Training on "):  # printed by run_fn just before model.fit
                os.killpg(process.pid, signal.SIGKILL)
                break
        else:
            pytest.fail("the pipeline ended before training started")
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not os.path.exists(tmp_path / "serving") or _versions(tmp_path / "serving") == []

    assert local_runner.main(argv) == 0
    resumed = summarize_latest_run(str(tmp_path / "metadata.sqlite"))
    assert {name: resumed.executions[name] for name in UPSTREAM} == \
        {name: "CACHED" for name in UPSTREAM}
    assert resumed.executions["Trainer"] == "COMPLETE"
    assert resumed.pushed
    versions = _versions(tmp_path / "serving")
    assert len(versions) == 1
    assert os.path.isfile(tmp_path / "serving" / versions[0] / "saved_model.pb")
    assert not os.path.exists(tmp_path / "serving" / STAGING)


def test_two_runs_on_one_root_keep_their_artifacts_apart(tfds_pets_dir, tmp_path):
    assert local_runner.main(_argv(tfds_pets_dir, tmp_path)) == 0
    first = summarize_latest_run(str(tmp_path / "metadata.sqlite"))
    assert local_runner.main(_argv(tfds_pets_dir, tmp_path, "--epochs", "2")) == 0
    second = summarize_latest_run(str(tmp_path / "metadata.sqlite"))
    assert first.run_id != second.run_id
    assert second.executions["Transform"] == "CACHED"  # epochs do not concern Transform
    assert second.executions["Trainer"] == "COMPLETE"
    assert first.artifact_uris["Model"] != second.artifact_uris["Model"]
    for summary in (first, second):
        assert os.path.isfile(os.path.join(summary.artifact_uris["Model"], "Format-Serving",
                                           "saved_model.pb"))


def _push(tmp_path, monkeypatch=None, fail=False):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    serving = tmp_path / "model" / "Format-Serving"
    (serving / "variables").mkdir(parents=True, exist_ok=True)
    (serving / "saved_model.pb").write_bytes(b"graph")
    (serving / "variables" / "variables.index").write_bytes(b"weights")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    (tmp_path / "blessing").mkdir(exist_ok=True)
    (tmp_path / "blessing" / "BLESSED").write_text("")
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed" / ("9" if fail else "10"))
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serve")))
    if fail:
        def crash(src, dst, *args, **kwargs):
            raise OSError("disk full while copying saved_model.pb")
        monkeypatch.setattr(io_utils, "copy_file", crash)
    AtomicPusherExecutor().Do(
        {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination),
         "custom_config": json.dumps({})})
    return pushed


def test_an_interrupted_push_leaves_no_version_behind(tmp_path, monkeypatch):
    with pytest.raises(OSError, match="disk full"):
        _push(tmp_path, monkeypatch, fail=True)
    assert not os.path.exists(tmp_path / "serve") or _versions(tmp_path / "serve") == []
    monkeypatch.undo()
    pushed = _push(tmp_path)
    versions = _versions(tmp_path / "serve")
    assert len(versions) == 1
    assert pushed.get_string_custom_property("pushed_destination") == \
        str(tmp_path / "serve" / versions[0])
    assert sorted(os.listdir(tmp_path / "serve" / versions[0])) == ["saved_model.pb", "variables"]
    assert os.listdir(tmp_path / "serve") == versions  # no staging folder left
