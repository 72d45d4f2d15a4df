"""Segment a whole photo collection with a pushed model, as an Apache Beam job.

    pets-unet-batch-predict --model SERVING_DIR_OR_VERSION --input 'photos/**' --output masks/
    pets-unet-batch-predict ... --beam-arg=--runner=DataflowRunner --beam-arg=--project=...

--input is a file pattern (local or gs://; `**` crosses folders, `*` does not), a folder (every
file below it), or a .txt file listing one path per line (relative ones are read from the list's
folder). For each photo it writes `<output>/<its path below the input's folder>.mask.png`: the class
ids (0 pet, 1 background, 2 border) at the photo's own resolution, as displayed (a JPEG's EXIF
orientation is applied first, as pets-unet-predict does). The input's full name is kept, so two
photos never share a mask. The job's own masks and lists are never inputs, so --output may lie
inside the input folder, or be it.

The whole job writes `<output>/index.jsonl` (one row per segmented photo: its path, its mask, width,
height, the fraction of pet / background / border pixels and the model version) and
`<output>/failures.jsonl` (one row per photo that could not be segmented, with the reason in
words); both in no particular order. A bad photo never fails the job (exit status 0); a model,
input or output it cannot use is one `error:` line and exit status 2.

Beam runs it on the DirectRunner, one worker process per CPU (in this process on one CPU), showing
progress; --beam-arg values go to Beam after those defaults, so they win (as with local_runner.py).
Masks are written whole (to a temporary name, then renamed; a cloud object appears whole anyway)
and the two lists by Beam's own sink, so a rerun into the same folder replaces everything safely.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from typing import List, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference

from model_code.batch_steps import (NAMESPACE, SIGNATURE, Failed, ImagesModelHandler,
                                    ReadAndCheck, WriteMask)
from model_code.predict import SAVED_MODEL, UsageError

INDEX = "index.jsonl"
FAILURES = "failures.jsonl"
MASK_SUFFIX = ".mask.png"
GLOB = re.compile(r"[*?\[]")
PROGRESS_EVERY_S = 10.0


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What --input names: a file pattern and the folder mask names start from, or a list."""
    pattern: Optional[str] = None
    base: str = ""
    list_file: Optional[str] = None


def _is_remote(path: str) -> bool:
    return "://" in path


def _folder(path: str) -> str:
    """`path` with a trailing slash ('' for nothing)."""
    return path if not path or path.endswith("/") else path + "/"


def _folder_of(path: str) -> str:
    """The folder part of a path, with its trailing slash ('' for a bare name)."""
    return path[:path.rfind("/") + 1]


def parse_inputs(value: str) -> Inputs:
    """Reads --input: a folder, a .txt list of paths, or a file pattern."""
    path = value if _is_remote(value) else os.path.abspath(value)
    if value.endswith("/") or not _is_remote(value) and os.path.isdir(path):
        return Inputs(pattern=_folder(path) + "**", base=_folder(path))
    if value.endswith(".txt") and not GLOB.search(value):
        return Inputs(list_file=path)
    return Inputs(pattern=path, base=_folder_of(GLOB.split(path, maxsplit=1)[0]))


def check_inputs(inputs: Inputs, value: str) -> None:
    """UsageError unless --input names at least one file."""
    if inputs.list_file:
        if not FileSystems.exists(inputs.list_file):
            raise UsageError(f"--input {value}: no such list file")
        with FileSystems.open(inputs.list_file, compression_type=CompressionTypes.UNCOMPRESSED) \
                as f:
            if not any(_listed(line.decode("utf-8", "replace")) for line in f):
                raise UsageError(f"--input {value}: the list names no files")
        return
    try:
        found = FileSystems.match([inputs.pattern], limits=[1])[0].metadata_list
    except Exception as err:  # Beam wraps each filesystem's own errors in BeamIOError
        raise UsageError(f"--input {value}: cannot list it ({err})") from None
    if not found:
        raise UsageError(f"--input {value}: no files match")


def check_output(output: str) -> None:
    """UsageError unless --output is (or can be made) a folder this process can write to."""
    probe = f"{_folder(output)}.write-test-{uuid.uuid4().hex}"
    if not _is_remote(output):
        if os.path.exists(output) and not os.path.isdir(output):
            raise UsageError(f"--output {output} is a file; name a folder (it is created if "
                             "missing)")
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--output {output}: cannot create it ({err.strerror})") from None
    try:
        with FileSystems.create(probe) as f:
            f.write(b"")
        FileSystems.delete([probe])
    except Exception as err:  # OSError locally, BeamIOError or the cloud client's own remotely
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:200]
        raise UsageError(f"--output {output}: not writable ({reason})") from None


def resolve_model(path: str) -> str:
    """A pushed version, or the newest version of a serving dir (local or remote)."""
    from model_code import predict

    if not _is_remote(path):
        return predict.resolve_model_dir(path).rstrip("/")
    path = path.rstrip("/")  # predict.resolve_model_dir reads local folders only
    try:
        if FileSystems.exists(f"{path}/{SAVED_MODEL}"):
            return path
        found = FileSystems.match([f"{path}/*/{SAVED_MODEL}"])[0].metadata_list
    except Exception as err:  # BeamIOError, or the cloud client's own (no such bucket, ...)
        raise UsageError(f"--model {path}: cannot list it ({err})") from None
    versions = [m.path[len(path) + 1:-len(SAVED_MODEL) - 1] for m in found]
    versions = [name for name in versions if name.isdigit()]
    if not versions:
        raise UsageError(f"--model {path}: no SavedModel in it or in a version folder")
    return f"{path}/{max(versions, key=int)}"


def check_model(model_dir: str) -> None:
    """UsageError unless saved_model.pb names the serving_images signature.

    Read as bytes, so that this process never imports TensorFlow (520 MB of it, beside the
    workers'): the signature's name is a key of SignatureDef map entries, a length-delimited
    field 1. Only a model with it passes; the workers load the model and say so in any case."""
    key = b"\x0a" + bytes([len(SIGNATURE)]) + SIGNATURE.encode()
    try:
        with FileSystems.open(f"{model_dir}/{SAVED_MODEL}",
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
    except Exception as err:  # OSError locally, BeamIOError or a client error remotely
        raise UsageError(f"--model {model_dir}: cannot read its {SAVED_MODEL} ({err})") from None
    if key not in data:
        raise UsageError(f"--model {model_dir}: this SavedModel has no {SIGNATURE} signature; "
                         "is it a model this pipeline pushed?")


def _listed(line: str) -> str:
    """The path on one line of a list file ('' for a blank line or a # comment)."""
    line = line.strip()
    return "" if line.startswith("#") else line


def common_folder(a: str, b: str) -> str:
    """The deepest folder (with a trailing slash) holding folders `a` and `b`; '' for none."""
    while not b.startswith(a):
        a = _folder_of(a.rstrip("/"))
    return a


class CommonFolder(beam.CombineFn):
    """The deepest folder holding every path of a PCollection ('' when there is none)."""

    def create_accumulator(self):
        return None

    def add_input(self, common, path):
        return _folder_of(path) if common is None else common_folder(common, _folder_of(path))

    def merge_accumulators(self, accumulators):
        folders = [folder for folder in accumulators if folder is not None]
        return functools.reduce(common_folder, folders) if folders else None

    def extract_output(self, common):
        return common or ""


def mask_name(path: str, base: str) -> str:
    """The mask's path below --output: the input's path below `base`, plus MASK_SUFFIX."""
    relative = path[len(base):] if base and path.startswith(base) else \
        path.replace("://", "/").lstrip("/")
    return relative + MASK_SUFFIX


def _from_folder(path: str, folder: str) -> str:
    """A listed path; a relative one is taken from the list's `folder`."""
    if _is_remote(path) or path.startswith("/"):
        return path
    return folder + path if _is_remote(folder) else os.path.normpath(folder + path)


def _metadata_path(metadata) -> str:
    return metadata.path


def _not_an_output(path: str, output_folder: str) -> bool:
    """False for a mask or list this job writes (the input may hold --output, or be it)."""
    if not path.startswith(output_folder):
        return True
    return not (path.endswith(MASK_SUFFIX) or path[len(output_folder):] in (INDEX, FAILURES))


def _with_mask_name(path: str, base: str):
    return path, mask_name(path, base)


def _failure_row(failed: Failed) -> str:
    return json.dumps({"path": failed.path, "reason": failed.reason})


def build(pipeline: beam.Pipeline, inputs: Inputs, output: str, model_dir: str,
          progress: Optional[str] = None) -> None:
    """Adds the whole job to `pipeline`."""
    if inputs.list_file:
        list_folder = _folder_of(inputs.list_file)
        paths = (pipeline
                 | "ReadList" >> beam.io.ReadFromText(inputs.list_file)
                 | "Paths" >> beam.Map(_listed)
                 | "SkipBlank" >> beam.Filter(bool)
                 | "FromListFolder" >> beam.Map(_from_folder, list_folder))
        base = paths | "Base" >> beam.CombineGlobally(CommonFolder())
    else:
        paths = (pipeline
                 | "Match" >> fileio.MatchFiles(inputs.pattern)
                 | "Paths" >> beam.Map(_metadata_path))
        base = pipeline | "Base" >> beam.Create([inputs.base])
    output_folder = _folder(output if _is_remote(output) else os.path.abspath(output))
    checked = (paths
               | "NotOutputs" >> beam.Filter(_not_an_output, output_folder)
               | "Name" >> beam.Map(_with_mask_name, beam.pvalue.AsSingleton(base))
               # Spreads the photos over the workers (matching yields them all in one bundle).
               | "Spread" >> beam.Reshuffle()
               | "ReadAndCheck" >> beam.ParDo(ReadAndCheck(model_dir, progress))
               .with_outputs("failed", main="photos"))
    version = model_dir.rstrip("/").rsplit("/", 1)[-1]
    written = (checked.photos
               | "Segment" >> RunInference(ImagesModelHandler(model_dir))
               | "WriteMasks" >> beam.ParDo(WriteMask(output_folder, version, progress))
               .with_outputs("failed", main="rows"))
    (written.rows
     | "IndexRows" >> beam.Map(json.dumps)
     | "Index" >> beam.io.WriteToText(output_folder + INDEX, shard_name_template="",
                                      num_shards=1))
    ((checked.failed, written.failed)
     | "AllFailed" >> beam.Flatten()
     | "FailureRows" >> beam.Map(_failure_row)
     | "Failures" >> beam.io.WriteToText(output_folder + FAILURES, shard_name_template="",
                                         num_shards=1))


def pipeline_args(beam_args: List[str]) -> List[str]:
    """The DirectRunner with a worker per CPU (in-process on one CPU), then --beam-arg's;
    UsageError for values Beam would refuse."""
    from pipeline import beam_options

    mode = "multi_processing" if beam_options.cores() > 1 else "in_memory"
    args = [*beam_options.direct_runner_args(mode), *beam_args]
    try:
        beam_options.check_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return args


def _watch(progress: str, stop: threading.Event) -> None:
    """Prints the photos done and the rate over the last PROGRESS_EVERY_S seconds."""
    last, last_time = 0, time.monotonic()
    while not stop.wait(PROGRESS_EVERY_S):
        done, now = os.path.getsize(progress), time.monotonic()
        if done > last:
            print(f"  {done:,} photos done, {(done - last) / (now - last_time):.1f} photos/s",
                  flush=True)
        last, last_time = done, now


def _counters(result) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # not every runner reports metrics
        return {}
    totals = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (value or 0)
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="a pushed model version, or the serving dir (newest version is used)")
    parser.add_argument("--input", required=True,
                        help="a file pattern ('photos/**', 'gs://b/p/*.jpg'), a folder, or a .txt "
                             "file listing one path per line")
    parser.add_argument("--output", required=True, help="output folder (local or gs://)")
    parser.add_argument("--verbose", action="store_true",
                        help="show every library's logs (TensorFlow, Beam) as they come")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="extra Beam pipeline argument (repeatable); these come last, so they "
                             "win (e.g. --beam-arg=--runner=DataflowRunner)")
    args = parser.parse_args(argv)
    from pipeline import console

    if not args.verbose:
        console.quiet()
        # A failing job's error comes back as the exception, printed below in one line; Beam
        # also logs it, with every traceback, from each worker.
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    console.end_quietly_on_interrupt("interrupted: masks written so far are whole; run again")

    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        options = PipelineOptions(pipeline_args(args.beam_arg))
        inputs = parse_inputs(args.input)
        check_inputs(inputs, args.input)
        model_dir = resolve_model(args.model)
        check_model(model_dir)
        check_output(args.output)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {model_dir}")
    try:
        counts, seconds = run(options, inputs, args.output, model_dir)
    except Exception as err:  # a worker could not load the model, the output went away, ...
        if args.verbose:
            raise
        lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        print(f"error: the Beam job failed: {lines[-1][:500]} (--verbose shows more)",
              file=sys.stderr)
        return 1
    segmented, failed = counts.get("segmented", 0), counts.get("failed", 0)
    print(f"{segmented:,} photos segmented, {failed:,} failed, in {seconds:.1f} s "
          f"({(segmented + failed) / seconds:.1f} photos/s)")
    print(f"index:    {_folder(args.output)}{INDEX}")
    print(f"failures: {_folder(args.output)}{FAILURES}")
    return 0


def run(options, inputs: Inputs, output: str, model_dir: str):
    """Runs the job to its end: ({'segmented': n, 'failed': n}, seconds). Local runs print
    their progress."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    local = "direct" in runner.lower()
    settings = options.get_all_options()
    mode = settings["direct_running_mode"]
    print(f"Beam: {runner}" + (f", {mode}" if local else "") + (
        f", {settings['direct_num_workers']} worker processes" if mode == "multi_processing"
        and local else ""), flush=True)
    progress, stop = None, threading.Event()
    if local:
        fd, progress = tempfile.mkstemp(prefix="pets-unet-batch-progress-")
        os.close(fd)
        threading.Thread(target=_watch, args=(progress, stop), daemon=True).start()
    start = time.monotonic()
    try:
        pipeline = beam.Pipeline(options=options)
        build(pipeline, inputs, output, model_dir, progress)
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        stop.set()
        if progress:
            os.remove(progress)
    return _counters(result), time.monotonic() - start


if __name__ == "__main__":
    # Beam pickles this module's functions by reference: name them from the module, not __main__.
    from model_code import batch_predict

    sys.exit(batch_predict.main())
