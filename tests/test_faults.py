"""Faults: a killed run resumes from cache, runs sharing a root stay apart (pushes: test_pusher)."""
import os
import signal
import subprocess
import sys

import pytest

import local_runner
from components.atomic_pusher import STAGING
from pipeline.run_summary import summarize_latest_run, summarize_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM = ["ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "SchemaGen",
            "ExampleValidator", "Transform"]


def _argv(tfds_pets_dir, out, *extra):
    return ["--preset", "smoke", "--data-dir", tfds_pets_dir,
            "--pipeline-root", str(out / "root"), "--serving-dir", str(out / "serving"),
            "--metadata-path", str(out / "metadata.sqlite"), *extra]


def _versions(serving_dir):
    return sorted(name for name in os.listdir(serving_dir) if not name.startswith("."))


def _start(argv):
    """local_runner.py as a terminal starts it: a process group of its own, output read here."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "local_runner.py"), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(env, PYTHONUNBUFFERED="1"), cwd=ROOT,
                            start_new_session=True)


def _read_until(process, text):
    for line in process.stdout:
        if line.startswith(text):
            return
    pytest.fail(f"the run ended before printing {text!r}: {process.stderr.read()[-3000:]}")


def _add_run(metadata_path, name):
    """A pipeline_run context newer than every run so far, as another tool would leave it."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(connection)
    run_type = store.get_context_type("pipeline_run").id
    store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name=name)])


def test_run_killed_during_training_resumes_and_stays_consistent(tfds_pets_dir, tmp_path):
    """Ctrl-C in training; meanwhile a second run is refused; the same command then resumes and
    reports its own run, whatever else the store holds."""
    argv = _argv(tfds_pets_dir, tmp_path)
    metadata = str(tmp_path / "metadata.sqlite")
    first = second = None
    try:
        first = _start(argv)
        _read_until(first, "Training on ")  # printed by run_fn just before model.fit
        second = _start(argv)
        second_out, second_err = second.communicate(timeout=120)
        os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        first_err = first.communicate(timeout=60)[1]
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert (second.returncode, second_out) == (2, "")
    assert second_err.splitlines() == [
        f"error: another run (pid {first.pid}) is using {metadata} (lock: {metadata}.lock); wait "
        "for it to end, or give this run another --pipeline-root and --metadata-path"]
    assert first.returncode == 130
    assert first_err.splitlines() == [local_runner.INTERRUPTED]
    assert not os.path.exists(tmp_path / "serving") or _versions(tmp_path / "serving") == []

    resumed = _start(argv)
    _read_until(resumed, "Training on ")
    _add_run(metadata, "a newer run")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    run_id = next(line[4:-1] for line in out.splitlines() if line.startswith("Run "))
    assert run_id != "a newer run"
    summary = summarize_run(metadata, run_id)
    assert {name: summary.executions[name] for name in UPSTREAM} == \
        {name: "CACHED" for name in UPSTREAM}
    assert summary.executions["Trainer"] == "COMPLETE"
    assert summary.pushed
    versions = _versions(tmp_path / "serving")
    assert len(versions) == 1
    assert f"Pushed model:        {tmp_path / 'serving' / versions[0]}" in out
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
