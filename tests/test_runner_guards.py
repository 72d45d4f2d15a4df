"""local_runner.py's guards, each through a real process: one `error:` line and exit status 2.

Settings, folders and Beam arguments are checked before anything heavy (these processes end
within seconds, before TFX is imported), runs are kept off a pipeline root or store in use, and a
push that cannot be written ends the run in one line.
"""
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from pipeline import preflight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "local_runner.py")
# Runs a command in a mount namespace of its own (as root there) over a mount made for it.
IN_NAMESPACE = ["unshare", "--map-root-user", "--mount", "sh", "-c"]
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
FULL_DISK = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"'


def _runner(tmp_path, *argv, wrap=()):
    """local_runner.py in its own process; its default folders all under `tmp_path`.

    The --data-dir does not exist: the guards come before the data's own checks, and nothing
    heavy could start if one let a run through.
    """
    defaults = ["--preset", "smoke", "--data-dir", str(tmp_path / "no-data"),
                "--pipeline-root", str(tmp_path / "root"),
                "--serving-dir", str(tmp_path / "serving"),
                "--metadata-path", str(tmp_path / "metadata.sqlite")]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    return subprocess.run([*wrap, sys.executable, RUNNER, *defaults, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _assert_one_error(done, *parts):
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""  # the run never started
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for part in parts:
        assert part in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", str(2 ** 63)], f"--epochs must be from 1 to 100,000, got {2 ** 63}"),
    (["--epochs", "0"], "--epochs must be from 1 to 100,000, got 0"),
    (["--tune", "--tune-trials", "0"], "--tune-trials must be from 1 to 100,000, got 0"),
    (["--tune", "--tune-epochs", "100001"], "--tune-epochs must be from 1 to 100,000, got 100001"),
    (["--beam-arg=--direct_num_workers=-3"],
     "--beam-arg: --direct_num_workers must be 0 (one per CPU) or more, got -3"),
    (["--beam-arg=--direct_num_workers=two"],
     "--beam-arg: argument --direct_num_workers: invalid int value: 'two'"),
    (["--beam-arg=--runner=NoSuchRunner"],
     "--beam-arg: --runner=NoSuchRunner: Unexpected pipeline runner: NoSuchRunner."),
], ids=["epochs-int64", "epochs-0", "trials-0", "tune-epochs-large", "beam-workers-negative",
        "beam-workers-word", "beam-runner-unknown"])
def test_settings_out_of_range_end_in_one_line(tmp_path, argv, message):
    _assert_one_error(_runner(tmp_path, *argv), message)
    assert not os.path.exists(tmp_path / "root")


@pytest.mark.parametrize("case", ["root-is-file", "serving-under-file", "metadata-is-folder",
                                  "metadata-under-file", "metadata-not-sqlite"])
def test_folders_of_the_wrong_kind_end_in_one_line(tmp_path, case):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    flag, path, message = {
        "root-is-file": ("--pipeline-root", a_file, "is a file, not a folder"),
        "serving-under-file": ("--serving-dir", a_file / "serving",
                               f"cannot be created: {a_file} is a file"),
        "metadata-is-folder": ("--metadata-path", tmp_path, "is a folder"),
        "metadata-under-file": ("--metadata-path", a_file / "metadata.sqlite",
                                "its folder is a file"),
        "metadata-not-sqlite": ("--metadata-path", a_file, "is not an SQLite file"),
    }[case]
    _assert_one_error(_runner(tmp_path, flag, str(path)), f"error: {flag} {path}", message)


def _namespaces_work(script):
    folder = tempfile.mkdtemp()
    try:
        return subprocess.run([*IN_NAMESPACE, script, "sh", folder, "true"],
                              capture_output=True, timeout=30).returncode == 0
    except OSError:  # no unshare
        return False
    finally:
        os.rmdir(folder)


needs_namespaces = pytest.mark.skipif(
    not _namespaces_work(READ_ONLY),
    reason="needs `unshare --map-root-user --mount` (user namespaces) for a read-only mount, the "
           "one not-writable folder that stops root too")


@needs_namespaces
@pytest.mark.parametrize("flag, inside, message", [
    ("--pipeline-root", "root", "cannot be created (Read-only file system)"),
    ("--serving-dir", "", "is not writable (Read-only file system)"),
    ("--metadata-path", "metadata.sqlite", "its folder is not writable (Read-only file system)"),
], ids=["root", "serving", "metadata"])
def test_folders_that_cannot_be_written_end_in_one_line(tmp_path, flag, inside, message):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    path = str(read_only / inside) if inside else str(read_only)
    done = _runner(tmp_path, flag, path, wrap=[*IN_NAMESPACE, READ_ONLY, "sh", str(read_only)])
    _assert_one_error(done, f"error: {flag} {path}", message)


@pytest.mark.parametrize("held", ["metadata", "root"])
def test_a_root_or_store_in_use_is_refused_in_one_line(tfds_pets_dir, tmp_path, held):
    """Another process holds the lock of the metadata file, or of the pipeline root (the other
    file differs); tests/test_faults.py has two real runs meet."""
    guarded = tmp_path / ("metadata.sqlite" if held == "metadata" else "root")
    lock = f"{guarded}.lock" if held == "metadata" else str(guarded / preflight.ROOT_LOCK)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write(f"{os.getpid()}\n")
        holder.flush()
        other = "root" if held == "metadata" else "metadata.sqlite"
        done = _runner(tmp_path, "--data-dir", tfds_pets_dir,
                       {"root": "--pipeline-root", "metadata.sqlite": "--metadata-path"}[other],
                       str(tmp_path / "other" / other))
    _assert_one_error(done, f"error: another run (pid {os.getpid()}) is using {guarded} "
                            f"(lock: {lock}); wait for it to end, or give this run another "
                            "--pipeline-root and --metadata-path")


@pytest.mark.skipif(not _namespaces_work(FULL_DISK),
                    reason="needs `unshare --map-root-user --mount` (user namespaces) to mount "
                           "a small tmpfs: a disk that is really full")
def test_a_full_serving_disk_ends_the_run_in_one_line(smoke_runs, tfds_pets_dir, tmp_path):
    """The smoke runs' store, copied: everything up to the Pusher is served from the cache."""
    paths = smoke_runs[0]
    shutil.copyfile(paths["metadata_path"], tmp_path / "metadata.sqlite")
    full = tmp_path / "full"
    full.mkdir()
    done = _runner(tmp_path, "--data-dir", tfds_pets_dir, "--serving-dir", str(full),
                   wrap=[*IN_NAMESPACE, FULL_DISK, "sh", str(full)])
    assert done.returncode == 2, done.stderr[-3000:]
    assert re.search(r"^  Trainer +cached ", done.stdout, re.M)
    assert re.search(r"^  Pusher +FAILED ", done.stdout, re.M)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: pushing to {full} failed: "), lines
    assert "no space left on device" in lines[0]
