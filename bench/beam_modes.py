"""Beam's DirectRunner in-memory vs multi-processing for the data steps, at two input sizes.

    .venv/bin/python bench/beam_modes.py                    # 1,000 and 7,349 synthetic pets
    .venv/bin/python bench/beam_modes.py --sizes 1000 --repeats 3
    .venv/bin/python bench/beam_modes.py --sizes 7349 --copies 3   # 22,047 examples

For each size, runs ImportExampleGen -> ExampleQuarantine -> StatisticsGen -> SchemaGen ->
ExampleValidator -> Transform (bench/transform_memory.py) once per mode per repeat, each in a
fresh process, the modes interleaved; prints the CPU, each component's median seconds per mode and
the ratio, and writes outputs/bench/beam_modes.json. 7,349 is the real Oxford-IIIT Pet's size;
its synthetic copy is written first if missing (a few minutes). --copies K reads K symlinked
copies of each set's files (same examples K times: a bigger input without writing one).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

MODES = ("in_memory", "multi_processing")


def replicated(data_root: str, copies: int, folder: str) -> str:
    """A folder holding `copies` links to each TFRecord file of `data_root`."""
    from pipeline.dataset import TFRECORD_PATTERN

    os.makedirs(folder, exist_ok=True)
    for path in glob.glob(os.path.join(data_root, TFRECORD_PATTERN)):
        for copy in range(copies):
            link = os.path.join(folder, f"copy{copy}-{os.path.basename(path)}")
            if not os.path.lexists(link):
                os.symlink(path, link)
    return folder


def run_once(data_root: str, mode: str) -> dict:
    done = subprocess.run([sys.executable, os.path.join(HERE, "transform_memory.py"),
                           "--data-dir", data_root, "--beam-mode", mode],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} on {data_root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 7349])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    from trainer_bench import cpu_description

    from pipeline.dataset import ensure_synthetic

    cpu = cpu_description()
    print(f"CPU: {cpu}", flush=True)
    results = {"cpu": cpu, "sizes": {}}
    for size in args.sizes:
        data_root = ensure_synthetic(os.path.join(ROOT, "data", f"synthetic_{size}"), size)
        if args.copies > 1:
            data_root = replicated(data_root, args.copies, tempfile.mkdtemp(prefix="pets_x"))
            size *= args.copies
        runs = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            for mode in (MODES if repeat % 2 == 0 else MODES[::-1]):
                run = run_once(data_root, mode)
                runs[mode].append(run)
                print(f"  {size} examples, {mode}: {run['seconds']:.1f} s, peak RSS of the "
                      f"main process {run['peak_rss_mb']:.0f} MB", flush=True)
        results["sizes"][size] = runs

        print(f"\n== {size:,} examples: median seconds over {args.repeats} run(s) ==")
        print(f"  {'step':20s} {'in_memory':>10s} {'multi_proc':>10s} {'ratio':>6s}")
        rows = list(runs["in_memory"][0]["components"]) + ["whole"]
        for step in rows:
            def median(mode):
                return statistics.median(r["seconds"] if step == "whole" else
                                         r["components"].get(step, 0.0) for r in runs[mode])
            a, b = median("in_memory"), median("multi_processing")
            if max(a, b) >= 0.5:
                print(f"  {step:20s} {a:9.1f}s {b:9.1f}s {b / a:5.2f}x")
        print(flush=True)
    result_file.save(args.out, "beam_modes.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
