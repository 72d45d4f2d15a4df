"""run_fn on two workers, as Vertex AI runs a multi-replica job: TF_CONFIG, loopback ports.

Two real processes train the smoke model synchronously with MultiWorkerMirroredStrategy over a
real Transform output, sharing the Trainer's output folders as Vertex AI replicas do; only the
chief exports and logs, the worker waits for that export (TFX's executor checks for it on every
replica), and both end with the same weights.
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(transform, shared, out, cluster, task_type):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": task_type, "index": 0}}), CUDA_VISIBLE_DEVICES="")
    os.makedirs(out, exist_ok=True)
    log = open(os.path.join(out, "log.txt"), "w")
    return subprocess.Popen(
        [sys.executable, os.path.join(HERE, "run_fn_process.py"),
         transform["transformed_examples"], transform["transform_graph"], shared, out],
        env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def transform(smoke_runs):
    _, first, _, _ = smoke_runs
    return first.outputs["Transform"]


def _cluster():
    chief, worker = _free_ports(2)
    return {"chief": [f"127.0.0.1:{chief}"], "worker": [f"127.0.0.1:{worker}"]}


def test_two_workers_train_in_step_and_only_the_chief_exports(transform, tmp_path):
    cluster, shared = _cluster(), str(tmp_path / "trainer")
    chief = _start(transform, shared, str(tmp_path / "chief"), cluster, "chief")
    worker = _start(transform, shared, str(tmp_path / "worker"), cluster, "worker")
    for process, name in ((chief, "chief"), (worker, "worker")):
        code = process.wait(timeout=600)
        assert code == 0, open(tmp_path / name / "log.txt").read()[-4000:]
    log = open(tmp_path / "chief" / "log.txt").read()
    assert "MultiWorkerMirroredStrategy with 2 replica(s), this task chief 0" in log
    assert "Waiting for the chief's export" in open(tmp_path / "worker" / "log.txt").read()
    assert os.path.isfile(tmp_path / "trainer" / "model" / "saved_model.pb")
    assert sorted(os.listdir(tmp_path / "trainer" / "model_run")) == [
        "images", "train", "validation"]  # the chief's TensorBoard logs only
    for name in ("images", "train", "validation"):  # one writer each
        assert len(os.listdir(tmp_path / "trainer" / "model_run" / name)) == 1
    chief_weights = np.load(tmp_path / "chief" / "weights.npz")
    worker_weights = np.load(tmp_path / "worker" / "weights.npz")
    assert len(chief_weights.files) == len(worker_weights.files) > 0
    for key in chief_weights.files:
        np.testing.assert_array_equal(chief_weights[key], worker_weights[key])


def test_a_chief_without_its_worker_waits_instead_of_training_alone(transform, tmp_path):
    chief = _start(transform, str(tmp_path / "trainer"), str(tmp_path / "chief"), _cluster(),
                   "chief")
    try:
        time.sleep(30)
        assert chief.poll() is None  # still waiting for the worker
        assert not os.path.exists(tmp_path / "trainer" / "model")
    finally:
        chief.kill()
        chief.wait()
