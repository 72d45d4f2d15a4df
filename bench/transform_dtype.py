"""How Transform stores the image: float32 (today) vs uint8 bytes vs int64, at two input sizes.

    .venv/bin/python bench/transform_dtype.py                   # 1,000 and 7,349 synthetic pets
    .venv/bin/python bench/transform_dtype.py --sizes 1000

Per size, twice (the order of the three reversed the second time), in this process (in-memory
DirectRunner): the data steps once, then three Transform components side by side on the same
examples, each storing the image differently:
  float32  30,000 floats in [0, 1] per example (the pipeline's way until 2026-11-25)
  uint8    the pixels rounded to 0..255, as one bytes value (model_code.preprocessing, today)
  int64    the same rounded pixels as a tf.Example int64 list (varints)
For each: the Transform component's seconds, the size of its gzip'd output, and the time of one
pass over the train split as the Trainer's input reads it (parse, and for uint8/int64 turn back
into float32 in [0, 1]), the first epoch's input cost. Writes outputs/bench/transform_dtype.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import tensorflow as tf  # noqa: E402

from model_code import preprocessing  # noqa: E402

VARIANTS = ("float32", "uint8", "int64")


def _floats(inputs, custom_config):
    """(Transform's outputs, the image as float32 [batch, s, s, 3] in [0, 1] before storing)."""
    from model_code.config import Config

    config = Config.from_custom_config(custom_config)
    floats = preprocessing.decode_and_resize_images(
        preprocessing.squeeze_single_value(inputs[preprocessing.IMAGE_KEY]), config.input_size,
        config.mask_size)
    return preprocessing.preprocessing_fn(inputs, custom_config), floats


def preprocessing_fn_float32(inputs, custom_config=None):
    out, floats = _floats(inputs, custom_config)
    out[preprocessing.TRANSFORMED_IMAGE_KEY] = floats
    return out


def preprocessing_fn_int64(inputs, custom_config=None):
    out, floats = _floats(inputs, custom_config)
    out[preprocessing.TRANSFORMED_IMAGE_KEY] = tf.cast(tf.round(floats * 255.0), tf.int64)
    return out


FUNCTIONS = {"float32": "transform_dtype.preprocessing_fn_float32",
             "uint8": "model_code.preprocessing.preprocessing_fn",
             "int64": "transform_dtype.preprocessing_fn_int64"}


def read_pass_seconds(transform_graph: str, examples: str, variant: str, size: int) -> float:
    """One pass over the train split: parse, decode to float32 [0, 1], as the Trainer would."""
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(transform_graph).transformed_feature_spec()
    key = preprocessing.TRANSFORMED_IMAGE_KEY
    files = tf.io.gfile.glob(os.path.join(examples, "Split-train", "*"))

    def image(features):
        value = features[key]
        if variant == "uint8":
            return preprocessing.decode_image_pixels(value, size)
        return tf.cast(value, tf.float32) / (1.0 if variant == "float32" else 255.0)

    ds = (tf.data.TFRecordDataset(files, compression_type="GZIP",
                                  num_parallel_reads=tf.data.AUTOTUNE)
          .map(lambda r: image(tf.io.parse_single_example(r, spec)),
               num_parallel_calls=tf.data.AUTOTUNE))
    start = time.perf_counter()
    for _ in ds.prefetch(tf.data.AUTOTUNE):
        pass
    return time.perf_counter() - start


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def measure(data_root: str, order) -> dict:
    from tfx import v1 as tfx

    from model_code.config import PREPROCESSING_FIELDS, get_preset
    from pipeline import beam_options
    from pipeline.pipeline import data_components
    from pipeline.run_summary import summarize_latest_run

    config = get_preset("seed")
    data = data_components(data_root, config)
    transforms = [tfx.components.Transform(
        examples=data.quarantine.outputs["clean_examples"],
        schema=data.schema_gen.outputs["schema"], preprocessing_fn=FUNCTIONS[variant],
        custom_config=config.as_custom_config(PREPROCESSING_FIELDS),
        disable_statistics=True).with_id(f"Transform_{variant}") for variant in order]
    with tempfile.TemporaryDirectory() as out:
        metadata = os.path.join(out, "metadata.sqlite")
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="transform-dtype", pipeline_root=os.path.join(out, "root"),
            components=[*data.components()[:-1], *transforms],
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(metadata),
            beam_pipeline_args=beam_options.direct_runner_args("in_memory")))
        summary = summarize_latest_run(metadata)
        rows = {}
        for variant in VARIANTS:
            node = f"Transform_{variant}"
            outputs = summary.outputs[node]
            rows[variant] = {
                "transform_s": summary.seconds[node],
                "output_mb": folder_bytes(outputs["transformed_examples"]) / 1e6,
                "read_pass_s": read_pass_seconds(outputs["transform_graph"],
                                                 outputs["transformed_examples"], variant,
                                                 config.input_size)}
        return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 7349])
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    from trainer_bench import cpu_description

    from pipeline import console
    from pipeline.dataset import ensure_synthetic

    console.quiet()
    results = {"cpu": cpu_description(), "sizes": {}}
    print(f"CPU: {results['cpu']}", flush=True)
    for size in args.sizes:
        data_root = ensure_synthetic(os.path.join(ROOT, "data", f"synthetic_{size}"), size)
        # Twice, the variants in opposite orders, so that none always runs first; the mean.
        runs = [measure(data_root, VARIANTS), measure(data_root, VARIANTS[::-1])]
        rows = results["sizes"][size] = {
            variant: {key: sum(run[variant][key] for run in runs) / len(runs)
                      for key in runs[0][variant]} for variant in VARIANTS}
        results.setdefault("runs", {})[size] = runs
        print(f"\n== {size:,} examples (mean of 2 runs, opposite orders) ==")
        print(f"  {'image stored as':16s} {'Transform':>10s} {'output':>10s} {'train read':>11s}")
        for variant, row in rows.items():
            print(f"  {variant:16s} {row['transform_s']:9.1f}s {row['output_mb']:8.1f}MB "
                  f"{row['read_pass_s']:10.2f}s", flush=True)
    result_file.save(args.out, "transform_dtype.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
