"""All pipeline benchmarks in one invocation; prints a table, writes outputs/bench/results.json.

    .venv/bin/python bench/run_all.py [--quick]

1. Pipeline overhead: a fresh `smoke`-preset run on the 1,000 synthetic pets, wall time per
   component (from ML Metadata), then two unchanged re-runs (cache). The second run still
   evaluates and pushes, because the first run's model has just become the baseline; the third
   is the steady state. Goal: an unchanged re-run < 10 % of the first run.
2. Transform throughput: examples/s of the Transform component in that run vs a plain tf.data
   loop doing the same decode + resize (same functions) over the same TFRecords, right after.
3. Trainer throughput at the `seed` preset, as bench/trainer_bench.py measures it (tutorial,
   ours float32, ours auto precision; >= 30 s windows, 3 interleaved repeats); achieved GFLOP/s
   (12.5 GFLOP per training image) against this machine's matmul peak in the side's precision;
   peak resident memory of each training process, and of a process running the data steps up
   to Transform (bench/transform_memory.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import result_file
import trainer_bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

TRAIN_GFLOP_PER_IMAGE = 12.5  # seed model, forward + backward, 100x100 input (issue 6)


def pipeline_overhead(data_root: str, out: str):
    from tfx import v1 as tfx

    from model_code.config import get_preset
    from pipeline.pipeline import create_pipeline
    from pipeline.run_summary import summarize_latest_run

    shutil.rmtree(out, ignore_errors=True)
    metadata = os.path.join(out, "metadata.sqlite")
    os.makedirs(out)

    def run():
        start = time.perf_counter()
        tfx.orchestration.LocalDagRunner().run(create_pipeline(
            pipeline_name="bench", pipeline_root=os.path.join(out, "root"), data_root=data_root,
            serving_dir=os.path.join(out, "serving"), config=get_preset("smoke"),
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(metadata),
            beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"]))
        return time.perf_counter() - start, summarize_latest_run(metadata).seconds

    first, first_parts = run()
    second, second_parts = run()  # the first model is now the baseline: Evaluator, Pusher rerun
    third, third_parts = run()  # nothing changed since the second run: everything cached
    return {"first_run_s": first, "second_run_s": second, "cached_rerun_s": third,
            "second_run_ratio": second / first, "rerun_ratio": third / first,
            "first_run_components_s": first_parts, "second_run_components_s": second_parts,
            "rerun_components_s": third_parts}, metadata


def tfdata_decode_rate(data_root: str, input_size: int, mask_size: int) -> dict:
    import glob

    import tensorflow as tf

    from model_code.preprocessing import decode_and_resize_images, decode_and_resize_masks

    files = sorted(glob.glob(os.path.join(data_root, "*.tfrecord*")))
    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            "segmentation_mask": tf.io.FixedLenFeature([], tf.string)}
    ds = (tf.data.TFRecordDataset(files).batch(32)
          .map(lambda r: tf.io.parse_example(r, spec))
          .map(lambda f: (decode_and_resize_images(f["image"], input_size, mask_size),
                          decode_and_resize_masks(f["segmentation_mask"], mask_size))))
    start, count = time.perf_counter(), 0
    for images, _ in ds:
        count += int(images.shape[0])
    return {"examples": count, "examples_per_s": count / (time.perf_counter() - start)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer trainer steps and one repeat (a smoke check of the bench)")
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    from model_code.config import SEED
    from pipeline.dataset import ensure_synthetic
    from pipeline.run_summary import summarize_run

    tfds_dir = os.path.join(ROOT, "data", "synthetic_1000")
    data_root = ensure_synthetic(tfds_dir, 1000)
    overhead, metadata = pipeline_overhead(data_root, os.path.join(args.out, "pipeline"))
    transform_s = overhead["first_run_components_s"]["Transform"]
    transform = {"component_examples_per_s": 1000 / transform_s,
                 "tfdata": tfdata_decode_rate(data_root, SEED.input_size, SEED.mask_size)}
    transform["ratio_component_to_tfdata"] = (transform["component_examples_per_s"] /
                                              transform["tfdata"]["examples_per_s"])
    outputs = summarize_run(metadata).outputs["Transform"]
    trainer = trainer_bench.run_sides(outputs, tfds_dir, "seed",
                                      seconds=5 if args.quick else 30,
                                      repeats=1 if args.quick else 3)
    done = subprocess.run([sys.executable, os.path.join(HERE, "transform_memory.py")],
                          capture_output=True, text=True, check=True)
    transform["data_steps_peak_rss_mb"] = json.loads(
        done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    peaks = {dtype: trainer_bench.matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")}
    for row in trainer.values():
        row["gflops"] = row["median_images_per_s"] * TRAIN_GFLOP_PER_IMAGE
        peak = peaks["float32" if row["precision"] == "float32" else "bfloat16"]
        row["share_of_matmul_peak"] = row["gflops"] / peak
    results = {"cpu": trainer_bench.cpu_description(), "pipeline_overhead": overhead,
               "transform": transform, "trainer_seed": trainer, "matmul_peak_gflops": peaks}

    print("\n== Pipeline (smoke preset, 1,000 synthetic pets) ==")
    print(f"  {'component':32s} {'1st run':>8s} {'2nd run':>8s} {'3rd run':>8s}")
    for node, seconds in sorted(overhead["first_run_components_s"].items(), key=lambda x: -x[1]):
        second = overhead["second_run_components_s"].get(node, 0.0)
        rerun = overhead["rerun_components_s"].get(node, 0.0)
        print(f"  {node:32s} {seconds:7.1f}s {second:7.1f}s {rerun:7.1f}s")
    print(f"  whole run: 1st {overhead['first_run_s']:.1f} s; 2nd (first model is now the "
          f"baseline, so Evaluator and Pusher run) {overhead['second_run_s']:.1f} s = "
          f"{overhead['second_run_ratio']:.2f}x; 3rd, unchanged {overhead['cached_rerun_s']:.1f}"
          f" s = {overhead['rerun_ratio']:.2f}x (goal < 0.10)")
    print("\n== Transform throughput ==")
    print(f"  Transform component {transform['component_examples_per_s']:8.1f} examples/s")
    print(f"  plain tf.data loop  {transform['tfdata']['examples_per_s']:8.1f} examples/s")
    print(f"  ratio component / tf.data: {transform['ratio_component_to_tfdata']:.2f}")
    print(f"  peak RSS, ImportExampleGen..Transform at the seed preset: "
          f"{transform['data_steps_peak_rss_mb']:.0f} MB")
    print("\n== Trainer throughput, seed preset (64 filters, batch 50) ==")
    print(f"  CPU {results['cpu']['model']}, flags {' '.join(results['cpu']['flags'])}; matmul "
          f"peak float32 {peaks['float32']:.0f}, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s")
    for name, row in trainer.items():
        print(f"  {name:17s} ({row['precision']:14s}) {row['median_images_per_s']:6.1f} images/s"
              f"  {row['gflops']:6.1f} GFLOP/s ({100 * row['share_of_matmul_peak']:.0f} % of "
              f"its matmul peak)  {row['ratio_to_tutorial']:.2f}x tutorial  "
              f"peak RSS {row['peak_rss_mb']:.0f} MB")
    result_file.save(args.out, "results.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
