"""Trainer throughput, side by side: the tutorial's script vs our Trainer, float32 and auto precision.

    .venv/bin/python bench/trainer_bench.py [--seconds 30] [--repeats 3] [--preset seed]

Sides, each in its own process (bench/trainer_throughput.py), interleaved, `--repeats` times:
tutorial (float32, as published), ours float32, ours auto (model_code.precision's choice for
this machine). Each process warms up past a full pass over its 200 examples (caches full), then
times whole steps for at least `--seconds`. Reported: median and spread of images/s per side,
ratios to the tutorial, the CPU model and its relevant flags, and this machine's float32 and
bfloat16 matmul peaks. Needs a Transform output; one is made with the `smoke` pipeline on the
1,000 synthetic pets if none is given. Writes outputs/bench/trainer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

SIDES = (("tutorial", "float32"), ("ours", "float32"), ("ours", "auto"))
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")


def cpu_description() -> dict:
    from model_code.precision import cpu_flags

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = cpu_flags()
    return {"model": model, "cores": os.cpu_count(),
            "flags": [flag for flag in RELEVANT_FLAGS if flag in flags]}


def matmul_peak_gflops(dtype: str, seconds: float = 3.0) -> float:
    """Best sustained GFLOP/s of a 2048x2048 matmul in `dtype` on this machine."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([2048, 2048]), dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        matmul(a).numpy()
        reps += 1
    return reps * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9


def transform_output(out: str) -> dict:
    """Transform's folders from a smoke pipeline run on the 1,000 synthetic pets (made once)."""
    from tfx import v1 as tfx

    from model_code.config import SMOKE
    from pipeline.dataset import ensure_synthetic
    from pipeline.pipeline import create_pipeline
    from pipeline.run_summary import summarize_run

    data_root = ensure_synthetic(os.path.join(ROOT, "data", "synthetic_1000"), 1000)
    metadata = os.path.join(out, "metadata.sqlite")
    if not os.path.exists(metadata):
        tfx.orchestration.LocalDagRunner().run(create_pipeline(
            pipeline_name="trainer-bench", pipeline_root=os.path.join(out, "root"),
            data_root=data_root, serving_dir=os.path.join(out, "serving"), config=SMOKE,
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(metadata),
            beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"]))
    return summarize_run(metadata).outputs["Transform"]


def run_sides(transform: dict, tfds_dir: str, preset: str, seconds: float, repeats: int
              ) -> dict:
    runs = {f"{side} {precision}": [] for side, precision in SIDES}
    for repeat in range(repeats):
        for side, precision in SIDES:
            cmd = [sys.executable, os.path.join(HERE, "trainer_throughput.py"), "--side", side,
                   "--preset", preset, "--precision", precision, "--seconds", str(seconds),
                   "--transformed", transform["transformed_examples"],
                   "--transform-graph", transform["transform_graph"], "--tfds-dir", tfds_dir]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{side} {precision} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[f"{side} {precision}"].append(result)
            print(f"  repeat {repeat + 1}: {side:8s} {precision:8s} -> {result['precision']:15s}"
                  f" {result['images_per_s']:6.1f} images/s over {result['seconds']:.0f} s",
                  flush=True)
    summary = {}
    for name, results in runs.items():
        rates = [r["images_per_s"] for r in results]
        summary[name] = {"precision": results[0]["precision"],
                         "median_images_per_s": statistics.median(rates),
                         "min": min(rates), "max": max(rates),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "runs": results}
    tutorial = summary["tutorial float32"]["median_images_per_s"]
    for row in summary.values():
        row["ratio_to_tutorial"] = row["median_images_per_s"] / tutorial
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    cpu = cpu_description()
    peaks = {dtype: matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")}
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}")
    print(f"matmul peak: float32 {peaks['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16']:.0f} GFLOP/s", flush=True)
    transform = transform_output(os.path.join(args.out, "trainer_data"))
    sides = run_sides(transform, os.path.join(ROOT, "data", "synthetic_1000"), args.preset,
                      args.seconds, args.repeats)
    print(f"\n== Trainer throughput, {args.preset} preset, median of {args.repeats} ==")
    for name, row in sides.items():
        print(f"  {name:17s} ({row['precision']:14s}) {row['median_images_per_s']:6.1f} images/s"
              f"  [{row['min']:.1f}-{row['max']:.1f}]  {row['ratio_to_tutorial']:.2f}x tutorial"
              f"  peak RSS {row['peak_rss_mb']:.0f} MB")
    result_file.save(args.out, "trainer.json", {
        "cpu": cpu, "matmul_peak_gflops": peaks, "preset": args.preset,
        "seconds": args.seconds, "sides": sides})
    return 0


if __name__ == "__main__":
    sys.exit(main())
