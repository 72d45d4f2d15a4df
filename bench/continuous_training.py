"""Continuous training on 3 synthetic spans: warm vs cold start, and one new span vs all at once.

    .venv/bin/python bench/continuous_training.py               # 1,000 pets per span, as the README, ~12 min
    .venv/bin/python bench/continuous_training.py --per-span 300      # shorter

Runs the README's walkthrough ("Continuous training"), its commands with this benchmark's own
folders: `python -m pipeline.dataset ... --span N` before each run of `local_runner.py` (demo
preset), span 3 with `--cat-share 0.9`, then once more with nothing new. Then:
  * warm vs cold: the span-3 run warm-started from the span-2 run's blessed model; the same
    run again with `--warm-start never` (the same window and data, served from the cache up to the
    Trainer); then warm again (from the cold run's model: timed only, so the cold run sits
    between two warm ones). Compared: the Trainer's seconds (the two warm runs' mean) and the
    test mean IoU (TFMA, span 3's test split).
  * data steps (ImportExampleGen -> ... -> Transform, each run in its own process,
    bench/transform_memory.py's way): the run that brings span 3, after spans 1 and 2 were
    ingested, vs one run over a flat folder holding all three spans' files.
Every run is its own process; prints the CPU, both comparisons and their ratios, and writes
outputs/bench/continuous_training.json.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import result_file
import trainer_bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
DATA_STEPS = ("ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "SchemaGen",
              "ExampleValidator", "SpanWindow", "Transform")


def local_run(data_dir: str, out: str, *extra) -> dict:
    from pipeline.run_summary import summarize_latest_run

    metadata = os.path.join(out, "metadata.sqlite")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "local_runner.py"), "--preset", "demo",
         "--data-dir", data_dir, "--pipeline-root", os.path.join(out, "root"),
         "--serving-dir", os.path.join(out, "serving"), "--metadata-path", metadata, *extra],
        capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"local_runner {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    summary = summarize_latest_run(metadata)
    return {"args": list(extra), "seconds": time.perf_counter() - start,
            "trainer_s": summary.seconds["Trainer"],
            "trainer_ran": summary.executions["Trainer"] == "COMPLETE", "mean_iou": summary.metrics["mean_iou"],
            "start": summary.start, "window": summary.window["window"],
            "console": done.stdout}


DATA_ONLY = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
from tfx import v1 as tfx
from model_code.config import get_preset
from pipeline import beam_options
from pipeline.pipeline import Spans, data_components
from pipeline.run_summary import summarize_latest_run
data, out, pattern = sys.argv[1], sys.argv[2], sys.argv[3]
spans = Spans(pattern=pattern, store=os.path.join(out, "root", "span_store")) if pattern else None
config = get_preset("demo")
components = data_components(data, config, spans).components()
metadata = os.path.join(out, "metadata.sqlite")
tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
    pipeline_name="continuous-data", pipeline_root=os.path.join(out, "root"),
    components=components, metadata_connection_config=tfx.orchestration.metadata
    .sqlite_metadata_connection_config(metadata),
    beam_pipeline_args=beam_options.direct_runner_args("in_memory")))
print(json.dumps(summarize_latest_run(metadata).seconds))
"""


def data_steps(data_dir: str, out: str, pattern: str = "") -> dict:
    """Seconds per data step of one run in a fresh process (`pattern`: the spans' pattern)."""
    done = subprocess.run([sys.executable, "-c", DATA_ONLY.format(root=ROOT), data_dir, out,
                           pattern], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"data steps failed:\n{done.stderr[-3000:]}")
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return {step: seconds[step] for step in DATA_STEPS if step in seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-span", type=int, default=1000, help="pets per span, as in the README")
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    from pipeline import spans

    print(json.dumps(trainer_bench.cpu_description()))
    results = {"per_span": args.per_span, "cpu": trainer_bench.cpu_description()}
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "spans"), os.path.join(tmp, "runs")
        runs = []
        for span, shift in ((1, []), (2, []), (3, ["--cat-share", "0.9"])):
            subprocess.run([sys.executable, "-m", "pipeline.dataset", "--data-dir", data,
                            "--source", "synthetic", "--span", str(span), "--num-examples",
                            str(args.per_span), *shift], cwd=ROOT, check=True)
            runs.append(local_run(data, out))
            print(f"span {span}: window {runs[-1]['window']}, Trainer {runs[-1]['trainer_s']:.0f}"
                  f" s, mean IoU {runs[-1]['mean_iou']:.4f}, start {runs[-1]['start']}",
                  flush=True)
            print("\n".join(line for line in runs[-1]["console"].splitlines()
                            if line.startswith(("Spans:", "Drift:", "Warm start:", "Cold start:",
                                                "Model:"))), flush=True)
        again = subprocess.run([sys.executable, os.path.join(ROOT, "local_runner.py"),
                                "--preset", "demo", "--data-dir", data, "--pipeline-root",
                                os.path.join(out, "root"), "--metadata-path",
                                os.path.join(out, "metadata.sqlite"), "--serving-dir",
                                os.path.join(out, "serving")], capture_output=True, text=True)
        print(again.stdout.strip().splitlines()[-1], flush=True)
        results["nothing_new"] = again.stdout.strip().splitlines()[-1]
        warm = runs[-1]
        cold = local_run(data, out, "--warm-start", "never")
        # The same warm start once more (from the cold run's blessed model: its time only), so
        # that the cold run sits between two warm ones; these machines' speed drifts by minutes.
        # (Cached, not timed, when the cold model was not blessed: the same inputs as before.)
        again_warm = local_run(data, out)
        warm_times = [warm["trainer_s"]] + [again_warm["trainer_s"]] * again_warm["trainer_ran"]
        warm_s = sum(warm_times) / len(warm_times)
        results["runs"] = [{k: run[k] for k in ("trainer_s", "mean_iou", "start", "window")}
                           for run in runs]
        results["warm_vs_cold"] = {
            "warm": {k: warm[k] for k in ("trainer_s", "mean_iou", "start")},
            "cold": {k: cold[k] for k in ("trainer_s", "mean_iou", "start")},
            "warm_again_s": again_warm["trainer_s"] if again_warm["trainer_ran"] else None,
            "time_ratio": warm_s / cold["trainer_s"],
            "iou_difference": warm["mean_iou"] - cold["mean_iou"]}
        print(f"warm: Trainer {warm['trainer_s']:.1f} s (again after cold: "
              + (f"{again_warm['trainer_s']:.1f} s" if again_warm["trainer_ran"] else "cached")
              + f"), "
              f"mean IoU {warm['mean_iou']:.4f}; "
              f"cold: Trainer {cold['trainer_s']:.1f} s, mean IoU {cold['mean_iou']:.4f}; "
              f"time ratio {results['warm_vs_cold']['time_ratio']:.2f} (mean warm / cold), "
              f"IoU difference {results['warm_vs_cold']['iou_difference']:+.4f}", flush=True)
        layout = spans.find_spans(data)

        # Data steps: one new span vs all three at once.
        growing = os.path.join(tmp, "data_spans")
        os.makedirs(growing)
        out = os.path.join(tmp, "data_runs")
        for span in layout.spans:
            os.symlink(os.path.join(data, f"span-{span}"), os.path.join(growing, f"span-{span}"))
            one_new = data_steps(growing, out, layout.pattern)  # the last: span 3 arrives
        flat = os.path.join(tmp, "flat")
        os.makedirs(flat)
        for span in layout.spans:
            for path in glob.glob(os.path.join(layout.folder(span), "*.tfrecord*")):
                os.symlink(path, os.path.join(flat, f"span{span}-{os.path.basename(path)}"))
        all_at_once = data_steps(flat, os.path.join(tmp, "flat_run"))
        new_s, all_s = sum(one_new.values()), sum(all_at_once.values())
        results["data_steps"] = {"one_new_span": one_new, "all_at_once": all_at_once,
                                 "one_new_span_s": new_s, "all_at_once_s": all_s,
                                 "ratio": new_s / all_s}
        print(f"data steps: one new span {new_s:.1f} s {one_new}; all three at once "
              f"{all_s:.1f} s {all_at_once}; ratio {new_s / all_s:.2f}", flush=True)
    result_file.save(args.out, "continuous_training.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
