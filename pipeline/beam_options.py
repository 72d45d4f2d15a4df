"""The local runner's Beam DirectRunner mode: in-memory for small inputs, parallel for large.

Beam's DirectRunner runs a pipeline either in this process (`in_memory`, one worker, nothing to
start) or across worker processes (`multi_processing`, `--direct_num_workers` of them), which
costs seconds per step to start and ship data but uses every core. On 2 cores (bench/README.md,
bench/beam_modes.py) the data steps took 2.3x as long multi-processing on 1,000 examples, 1.18x
on 7,349 (Oxford Pets' size) and 0.84x on 22,047: `MULTI_PROCESSING_FROM` sits at the crossing.
Machines with more cores gain more from workers; that was not measured here. Other runners (Dataflow, Flink, Spark) take their own
options through --beam-arg; `check_args` reads them with Beam's own parser before the run, so a
value Beam cannot take fails at once rather than inside the first Beam step.

Every DirectRunner option list names this project's setup.py as `--setup_file`. Without a
dependency option, each TFX Beam executor packages TFX itself as an sdist for remote workers
(tfx/utils/dependency_utils.py): about a second per Beam step and a 49 MB folder left behind in
the temp directory every time. The DirectRunner runs in this Python and stages nothing; a remote
runner given through --beam-arg would stage this project, which its workers need.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Tuple

MODES = ("auto", "in_memory", "multi_processing")
SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
# Examples from which multi_processing beats in_memory on a 2-core machine (bench/README.md).
MULTI_PROCESSING_FROM = 12_000


def cores() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose(mode: str, examples: Optional[int], cpus: Optional[int] = None) -> Tuple[str, str]:
    """(mode, why) for `mode` in MODES; `examples` is the input's size, None when unknown."""
    if mode not in MODES:
        raise ValueError(f"unknown Beam mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode, "asked for"
    cpus = cpus or cores()
    if cpus < 2:
        return "in_memory", "one CPU"
    if examples is None or examples < MULTI_PROCESSING_FROM:
        return "in_memory", f"fewer than {MULTI_PROCESSING_FROM:,} examples"
    return "multi_processing", f"{examples:,} examples, {cpus} CPUs"


def direct_runner_args(mode: str, cpus: Optional[int] = None) -> List[str]:
    """DirectRunner options for a mode chosen by `choose`."""
    staging = [f"--setup_file={SETUP_FILE}"] if os.path.exists(SETUP_FILE) else []
    if mode == "in_memory":
        return ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                "--direct_num_workers=1", *staging]
    return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={cpus or cores()}", *staging]


def check_args(args: List[str]) -> None:
    """ValueError, in one line, for Beam arguments Beam would refuse or crash on in the run:
    values its parser rejects, an unknown runner, a negative --direct_num_workers."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import create_runner

    def raise_errors(parser: argparse.ArgumentParser) -> None:
        parser.exit_on_error = False  # Beam's parser would print its usage and exit

    try:
        options = PipelineOptions(args).get_all_options(add_extra_args_fn=raise_errors)
    except argparse.ArgumentError as err:
        raise ValueError(f"--beam-arg: {err}") from None
    if options["direct_num_workers"] < 0:
        raise ValueError("--beam-arg: --direct_num_workers must be 0 (one per CPU) or more, got "
                         f"{options['direct_num_workers']}")
    if options["runner"]:
        try:
            create_runner(options["runner"])  # what beam.Pipeline does with the name
        except (ValueError, ImportError, AttributeError) as err:
            raise ValueError(f"--beam-arg: --runner={options['runner']}: {err}") from None
