"""A Pusher executor whose versions land whole and once each, even when pushes run side by side.

TFX's filesystem Pusher does the real work (blessing check, copy, archive copy, the PushedModel
artifact), but it copies straight into `<base>/<int(time.time())>/`: a run killed mid-copy leaves
half a version for TF Serving, and a second push in the same second finds that folder taken and
skips its copy while still recording itself as pushed there. Hand-written here, because TFX has
nothing for it:

- Staging: TFX's Pusher writes into `<base>/.staging/<execution>/`; the finished version folder
  is then renamed into place. On a local filesystem `os.rename` is atomic and refuses a
  non-empty target, so a taken version moves the push on to the next free integer (the PushedModel
  artifact records the version used). Object stores (gs://) have no atomic rename: there the
  rename is a copy, with the same retry.
- Dead pushes: while a push's staging folder exists, the push holds an exclusive flock on
  `<base>/.staging/<execution>.lock`. The kernel drops a flock when its process dies, so every
  push removes the staging folders whose lock it can take at once (and those without a lock file,
  left by older versions of this code). Local filesystems only; on gs:// nothing is cleaned.
- Failures writing the copy (a full disk most often) remove this push's staging folder and raise
  PushError, one line naming the serving directory and the cause.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from typing import Any, Dict, Iterator, List

import tensorflow as tf
from tfx.components.pusher import component as tfx_pusher
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

STAGING = ".staging"
LOCK = ".lock"
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR)
_ERRNOS = {os.strerror(number): number for number in errno.errorcode}


class PushError(RuntimeError):
    """A push could not be written; nothing of it is left in the serving directory."""


class AtomicPusherExecutor(pusher_executor.Executor):
    """Filesystem push through a staging folder and one rename to a free version."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        key = standard_component_specs.PUSH_DESTINATION_KEY
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[key], destination)
        if (destination.WhichOneof("destination") != "filesystem"
                or not self.CheckBlessing(input_dict)):
            return super().Do(input_dict, output_dict, exec_properties)
        base = destination.filesystem.base_directory
        pushed = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        # The artifact's folder is named after this execution: unique, and the same on a retry.
        name = os.path.basename(pushed.uri.rstrip("/"))
        try:
            with _staging(base, name) as staging:
                destination.filesystem.base_directory = staging
                super().Do(input_dict, output_dict,
                           dict(exec_properties, **{key: proto_utils.proto_to_json(destination)}))
                version = _land(staging, base,
                                int(pushed.get_string_custom_property("pushed_version")))
        except (OSError, tf.errors.OpError) as err:
            raise PushError(_describe(base, err)) from err
        pushed.set_string_custom_property("pushed_version", str(version))
        pushed.set_string_custom_property("pushed_destination", os.path.join(base, str(version)))


class AtomicPusher(tfx_pusher.Pusher):
    """TFX's Pusher with the staging executor above (same inputs, outputs and artifacts)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPusherExecutor)


def _is_local(path: str) -> bool:
    return "://" not in path


def _land(staging: str, base: str, version: int) -> int:
    """Renames the staged version folder to `<base>/<n>`, n the first free one from `version`."""
    source = os.path.join(staging, str(version))
    while True:
        target = os.path.join(base, str(version))
        try:
            if _is_local(base):
                os.rename(source, target)
            else:  # no atomic rename on object stores: a push racing this one may interleave
                fileio.rename(source, target)
            return version
        except tf.errors.AlreadyExistsError:
            pass
        except OSError as err:
            if err.errno not in _TAKEN:
                raise
        version += 1


@contextlib.contextmanager
def _staging(base: str, name: str) -> Iterator[str]:
    """This push's staging folder, removed afterwards; on a local filesystem, with its lock held.

    Once the lock is held, the staging folders of dead pushes are removed.
    """
    folder = os.path.join(base, STAGING)
    staging = os.path.join(folder, name)
    lock = os.path.join(folder, name + LOCK)
    fd = _lock(lock) if _is_local(base) else None
    try:
        if fd is not None:
            _remove_dead(folder, name)
        if fileio.exists(staging):  # left over by a killed attempt of this same execution
            fileio.rmtree(staging)
        yield staging
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        if fd is not None:  # on gs:// an empty .staging/ stays: no atomic remove-if-empty
            os.unlink(lock)  # before the flock goes, so nobody takes it for a dead push's
            os.close(fd)
            with contextlib.suppress(OSError):  # not empty: other pushes are staging
                os.rmdir(folder)


def _lock(path: str) -> int:
    """An open descriptor of `path` holding its exclusive flock (waits for it)."""
    while True:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # .staging was just removed by a push that ended
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _names(path, fd):
            return fd
        os.close(fd)  # a push cleaning up unlinked it while we waited: take the new one


def _names(path: str, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _remove_dead(folder: str, own: str) -> None:
    """Removes the staging folders in `folder` whose push has died, and their lock files."""
    for name in {entry.removesuffix(LOCK) for entry in os.listdir(folder)} - {own}:
        path = os.path.join(folder, name)
        fd = os.open(path + LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its push is running
            os.close(fd)
            continue
        try:
            if _names(path + LOCK, fd):
                shutil.rmtree(path, ignore_errors=True)
                os.unlink(path + LOCK)
        finally:
            os.close(fd)


def _describe(base: str, err: Exception) -> str:
    """One line for PushError: where, the cause in words, what to do."""
    if isinstance(err.__cause__, tf.errors.OpError):  # tfx's fileio re-raises some as OSError
        err = err.__cause__
    if isinstance(err, OSError):
        path, words, number = err.filename, err.strerror or str(err), err.errno
    else:  # TensorFlow's file errors read "<path>; <strerror>" and keep no errno
        path, _, words = err.message.rpartition("; ")
        number = _ERRNOS.get(words)
    words = " ".join(words.split())  # one line, whatever a remote filesystem answered
    cause = words[:1].lower() + words[1:] + (f" (errno {number})" if number else "")
    if path and not f"{path}/".startswith(os.path.join(base, "")):
        cause += f" writing {path}"
    fix = "free space there" if number in (errno.ENOSPC, errno.EDQUOT) else "fix that"
    return (f"pushing to {base} failed: {cause}; {fix} and rerun the same command: "
            "everything before the Pusher is served from the cache")
