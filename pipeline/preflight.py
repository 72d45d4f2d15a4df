"""A local run's checks before any heavy work, and its exclusive hold on its root and store.

The checks run before TensorFlow or TFX is imported, change nothing, and fail with a ValueError of
one line naming the flag, the path and the fix: counts out of range, folders that are files, a
metadata path that is a folder or not an SQLite file, places that cannot be written (a folder
that is missing must be creatable: its nearest existing parent is tried).

Two runs sharing a pipeline root or an ML Metadata file would mix up each other's artifacts (their
folders are numbered by execution ids, which two stores hand out twice) and summaries, so a run
holds an exclusive flock on `<metadata>.lock` and on `<pipeline root>/.lock` for as long as it
lasts, taken before TFX is imported (the two folders are created first, as the run would); a
second run is refused in one line. The kernel drops a flock when its process dies, so a killed
run leaves nothing to clean up.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from typing import Iterator, Optional

MAX_COUNT = 100_000  # epochs, trials: far beyond any useful run, far below int64 trouble
SQLITE_HEADER = b"SQLite format 3\x00"
ROOT_LOCK = ".lock"


class StoreBusy(ValueError):
    """Another run holds the pipeline root or the metadata file."""


def check_count(flag: str, value: Optional[int]) -> None:
    """`value` (None: not given) is a whole number from 1 to MAX_COUNT."""
    if value is not None and not 1 <= value <= MAX_COUNT:
        raise ValueError(f"{flag} must be from 1 to {MAX_COUNT:,}, got {value}")


def check_folder(flag: str, path: str) -> None:
    """`path` is a folder this process can write in, or can create."""
    problem = _writable_folder(path)
    if problem:
        raise ValueError(f"{flag} {path} {problem}; give a folder you can write in")


def check_store(flag: str, path: str) -> None:
    """`path` is an SQLite file this process can write, or can create."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; give the path of an SQLite file "
                         "(created if missing)")
    problem = _writable_folder(os.path.dirname(path))  # SQLite writes its journal beside it
    if problem:
        raise ValueError(f"{flag} {path}: its folder {problem}; give a path in a folder you "
                         "can write in")
    if not os.path.exists(path):
        return
    try:
        with open(path, "r+b") as store:
            header = store.read(len(SQLITE_HEADER))
    except OSError as err:
        raise ValueError(f"{flag} {path} cannot be written ({err.strerror}); give another "
                         "path") from None
    if header and header != SQLITE_HEADER:
        raise ValueError(f"{flag} {path} is not an SQLite file; give the path of an ML "
                         "Metadata store, or of a file that does not exist yet")


@contextlib.contextmanager
def exclusive(pipeline_root: str, metadata_path: str) -> Iterator[None]:
    """Holds both locks for the block; StoreBusy when another run holds either."""
    for folder in (pipeline_root, os.path.dirname(metadata_path)):
        os.makedirs(folder, exist_ok=True)
    with _flock(f"{metadata_path}.lock", metadata_path), \
            _flock(os.path.join(pipeline_root, ROOT_LOCK), pipeline_root):
        yield


@contextlib.contextmanager
def _flock(lock: str, guarded: str) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            raise StoreBusy(
                f"another run{f' (pid {holder})' if holder.isdigit() else ''} is using "
                f"{guarded} (lock: {lock}); wait for it to end, or give this run another "
                "--pipeline-root and --metadata-path") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # drops the flock; the file stays, so nobody locks a file just unlinked


def _writable_folder(path: str) -> Optional[str]:
    """What keeps `path` from being a folder to write in, or to create; None if nothing does."""
    if os.path.exists(path) and not os.path.isdir(path):
        return "is a file, not a folder"
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"cannot be created: {existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as err:
        return ("is not writable" if existing == path else "cannot be created") + \
            f" ({err.strerror})"
