"""The Pusher under real faults: pushes colliding in one second, pushes killed, a full disk.

Pushes run TFX's Pusher through AtomicPusherExecutor on a tiny real SavedModel. The concurrent
and killed pushes run in processes of their own: this file run as a script is that process.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script
    sys.path.insert(0, ROOT)

from components.atomic_pusher import STAGING, AtomicPusherExecutor, PushError  # noqa: E402


def _save_model(folder):
    """A trivial SavedModel with 1 MiB of weights (more than the full disk below holds)."""
    module = tf.Module()
    module.weights = tf.Variable(tf.zeros([256 * 1024]))
    module.serve = tf.function(lambda x: x * module.weights[0],
                               input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, os.path.join(folder, "Format-Serving"))


def _push(model, serving, pushed_uri):
    """One push of the model artifact folder `model` to `serving`, as the Pusher does it."""
    model_artifact = standard_artifacts.Model()
    model_artifact.uri = model
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(os.path.dirname(pushed_uri), "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = pushed_uri
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving))
    AtomicPusherExecutor().Do(
        {"model": [model_artifact], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination), "custom_config": "{}"})
    return pushed


def _child(spec):
    """Runs the pushes in `spec` in this process and prints what came of each as one JSON line."""
    if spec.get("tmpfs"):  # in a mount namespace of its own (unshare), gone when this ends
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec['tmpfs']}", "tmpfs",
                        spec["serving"]], check=True)
    results = []
    for execution, sync in spec["pushes"]:
        if sync:  # say ready, then start at the time the test writes into `go`
            open(os.path.join(sync, f"ready-{execution}"), "w").close()
            go, deadline = os.path.join(sync, "go"), time.time() + 300
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.005)
            with open(go) as f:
                time.sleep(max(0.0, float(f.read()) - time.time()))
        result = {"started": time.time()}
        try:
            pushed = _push(spec["model"], spec["serving"], os.path.join(spec["pushed"], execution))
            result["version"] = int(pushed.get_string_custom_property("pushed_version"))
            result["destination"] = pushed.get_string_custom_property("pushed_destination")
        except PushError as err:
            result["error"] = str(err)
        result["left"] = _tree(spec["serving"])
        results.append(result)
    print(json.dumps(results))


def _start(**spec):
    return subprocess.Popen([*spec.pop("prefix", []), sys.executable, os.path.abspath(__file__),
                             json.dumps(spec)], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def _results(process, timeout=120):
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return json.loads(out.splitlines()[-1])


def _tree(folder):
    """Every file and folder under `folder` (hidden ones too), relative to it."""
    found = []
    for parent, folders, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(parent, name), folder) for name in folders + files]
    return sorted(found)


def _versions(serving):
    return sorted(int(name) for name in os.listdir(serving) if not name.startswith("."))


@pytest.fixture
def start():
    """Starts push processes (this file as a script); those still running at the end are killed."""
    started = []

    def start_one(**spec):
        started.append(_start(**spec))
        return started[-1]

    yield start_one
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("model"))
    _save_model(folder)
    return folder


def _assert_complete(serving, version, model):
    served = os.path.join(serving, str(version))
    assert _tree(served) == _tree(os.path.join(model, "Format-Serving"))


def test_pushes_in_the_same_second_land_as_distinct_versions(model, tmp_path, start):
    serving, rounds = str(tmp_path / "serving"), 3
    syncs = [tmp_path / f"round{i}" for i in range(rounds)]
    for sync in syncs:
        sync.mkdir()
    children = [start(model=model, serving=serving, pushed=str(tmp_path / "pushed"),
                       pushes=[(f"{100 * i + who}", str(sync)) for i, sync in enumerate(syncs)])
                for who in (1, 2)]
    for i, sync in enumerate(syncs):
        deadline = time.time() + 90
        while len(os.listdir(sync)) < 2:
            assert all(c.poll() is None for c in children), \
                f"a push process ended before round {i} (see its traceback below)"
            assert time.time() < deadline, f"the pushes did not get ready for round {i}"
            time.sleep(0.01)
        second = math.floor(time.time()) + 1  # both start at the start of one second
        second += 1 if second - time.time() < 0.2 else 0
        (sync / "go.new").write_text(str(second))
        (sync / "go.new").rename(sync / "go")
    first, second = (_results(child) for child in children)

    landed = []
    for a, b in zip(first, second):
        assert "error" not in a and "error" not in b
        assert int(a["started"]) == int(b["started"])  # so TFX gave both the same version
        landed += [a["version"], b["version"]]
        for result in (a, b):
            assert result["destination"] == os.path.join(serving, str(result["version"]))
    assert len(set(landed)) == 2 * rounds
    assert _versions(serving) == sorted(landed)
    for version in landed:
        _assert_complete(serving, version, model)
    assert not os.path.exists(os.path.join(serving, STAGING))


def _blocking_model(model, folder):
    """A copy of `model` whose push blocks mid-copy, reading a FIFO, until the test feeds it."""
    shutil.copytree(model, folder)
    fifo = os.path.join(folder, "Format-Serving", "assets.fifo")
    os.mkfifo(fifo)
    return fifo


def _feed_until_done(fifo, process):
    """Lets `process` read through `fifo` (an empty file, each time it opens it) until it ends."""
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody reading it right now
            time.sleep(0.02)


def _wait_for_staging(staging, process):
    deadline = time.time() + 90
    while not (os.path.isdir(staging) and os.listdir(staging)):
        assert process.poll() is None and time.time() < deadline, "the push never started"
        time.sleep(0.02)


def test_a_push_removes_dead_pushes_staging_but_not_a_running_one(model, tmp_path, start):
    serving, pushed = str(tmp_path / "serving"), str(tmp_path / "pushed")
    staging = os.path.join(serving, STAGING)
    fifos, pushes = {}, {}
    for execution in ("201", "202"):
        fifos[execution] = _blocking_model(model, str(tmp_path / f"model{execution}"))
        pushes[execution] = start(model=str(tmp_path / f"model{execution}"), serving=serving,
                                  pushed=pushed, pushes=[(execution, None)])
    for execution, process in pushes.items():
        _wait_for_staging(os.path.join(staging, execution), process)
    os.kill(pushes["201"].pid, signal.SIGKILL)  # mid-copy: saved_model.pb is copied last
    assert pushes["201"].wait(timeout=30) == -signal.SIGKILL
    old = os.path.join(staging, "200", "1700000000")  # as left by the code before locks
    os.makedirs(os.path.join(old, "variables"))
    assert {"200", "201", "202"} <= set(os.listdir(staging))
    running = _tree(os.path.join(staging, "202"))

    result = _push(model, serving, os.path.join(pushed, "203"))
    assert sorted(os.listdir(staging)) == ["202", "202.lock"]
    assert _tree(os.path.join(staging, "202")) == running
    version = int(result.get_string_custom_property("pushed_version"))
    _assert_complete(serving, version, model)

    _feed_until_done(fifos["202"], pushes["202"])
    [late] = _results(pushes["202"])
    assert _versions(serving) == sorted([version, late["version"]])
    assert not os.path.exists(staging)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="mounts a small tmpfs in a mount namespace: needs root and unshare")
def test_a_full_disk_fails_the_push_in_one_line_and_leaves_nothing(model, tmp_path, start):
    """The serving dir is a real 512 KiB tmpfs, too small for the model's 1 MiB of weights.

    It is mounted in a mount namespace of the pushing process's own, so it goes away with that
    process whatever happens; the process reports what it left on the tmpfs.
    """
    serving = tmp_path / "serving"
    serving.mkdir()
    child = start(prefix=["unshare", "--mount", "--propagation", "private"], tmpfs="512k",
                  model=model, serving=str(serving), pushed=str(tmp_path / "pushed"),
                  pushes=[("301", None)])
    [result] = _results(child)
    assert result["error"] == (
        f"pushing to {serving} failed: no space left on device (errno 28); free space there "
        "and rerun the same command: everything before the Pusher is served from the cache")
    assert result["left"] == []  # on the full tmpfs, before it went away


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
