"""Serving throughput: the exported signatures against the bare Keras model, side by side.

    .venv/bin/python bench/serving_throughput.py [--model SERVING_DIR_OR_VERSION]

The bare model gets tensors that are already decoded, resized and scaled (by the same function
Transform uses), so the ratio is what the exported path's in-graph preprocessing costs. Both sides
run interleaved in one process, batch 1 and batch 32, over the same synthetic JPEG photos; the
median of the repeats is reported. Results go to stdout and outputs/bench/serving_throughput.json.
Goal (issue 5): the exported path costs at most 1.2x the bare model at batch 32.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def _photos(count: int, seed: int = 0):
    from PIL import Image

    from pipeline.synthetic_pets import make_pet

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        rgb, _, _ = make_pet(rng, is_cat=bool(i % 2))
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _export_untrained(preset: str, pushed_dir: str, out: str) -> str:
    """Exports build_unet(preset) with the pushed model's Transform graph and our signatures."""
    import glob

    import tensorflow_transform as tft

    from model_code import export
    from model_code.config import get_preset
    from model_code.unet import build_unet

    # The pushed model keeps the Transform graph's files in its assets; TFT reads the
    # transform_graph artifact folder, which lies beside the Trainer's output in pipeline_root.
    candidates = sorted(glob.glob(os.path.join(ROOT, "outputs", "*", "pipeline_root", "Transform",
                                               "transform_graph", "*")), key=os.path.getmtime)
    if not candidates:
        raise FileNotFoundError("no Transform output under outputs/*/pipeline_root; run `make run`")
    model = build_unet(get_preset(preset))
    target = os.path.join(os.path.dirname(out), f"untrained_{preset}_model")
    model.save(target, save_format="tf",
               signatures=export.make_signatures(model, tft.TFTransformOutput(candidates[-1])))
    return target


def _time(fn, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "outputs", "demo", "serving_model"))
    parser.add_argument("--preset", help="instead of the pushed model's weights, export an "
                        "untrained U-Net of this preset (e.g. seed) with the same Transform graph "
                        "and signatures; speed does not depend on the weights")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None,
                        help="JSON results (default outputs/bench/serving_throughput[_PRESET].json)")
    args = parser.parse_args(argv)
    suffix = f"_{args.preset}" if args.preset else ""
    args.out = args.out or os.path.join(ROOT, "outputs", "bench",
                                        f"serving_throughput{suffix}.json")

    import tensorflow as tf
    import tf_keras as keras

    from model_code import metrics  # noqa: F401  registers PixelMeanIoU for loading
    from model_code.predict import resolve_model_dir
    from model_code.preprocessing import decode_and_resize_images

    try:
        model_dir = resolve_model_dir(args.model)
    except FileNotFoundError as err:
        print(f"error: {err} (run `make run` first, or pass --model)", file=sys.stderr)
        return 2
    if args.preset:
        model_dir = _export_untrained(args.preset, model_dir, args.out)
    exported = tf.saved_model.load(model_dir)
    bare = keras.models.load_model(model_dir, compile=False)
    input_size = bare.input_shape[1]
    mask_size = bare.output_shape[1]
    bare_fn = tf.function(lambda x: bare(x, training=False))

    photos = _photos(args.images)
    examples = []
    for data in photos:
        example = tf.train.Example()
        example.features.feature["image"].bytes_list.value.append(data)
        examples.append(example.SerializeToString())
    paths = {
        "bare_model": lambda b: bare_fn(b),
        "serving_default": lambda b: exported.signatures["serving_default"](examples=b),
        "serving_images": lambda b: exported.signatures["serving_images"](images=b),
    }
    results = {}
    for batch_size in (1, 32):
        n = (len(photos) // batch_size) * batch_size
        raw = [tf.constant(photos[i:i + batch_size]) for i in range(0, n, batch_size)]
        serialized = [tf.constant(examples[i:i + batch_size]) for i in range(0, n, batch_size)]
        tensors = [decode_and_resize_images(b, input_size, mask_size) for b in raw]
        inputs = {"bare_model": tensors, "serving_default": serialized, "serving_images": raw}
        for name, fn in paths.items():  # warm-up: tracing and first-call costs
            fn(inputs[name][0])
        times = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                times[name].append(_time(fn, inputs[name]))
        for name in paths:
            seconds = statistics.median(times[name])
            results.setdefault(name, {})[f"batch_{batch_size}"] = {
                "images_per_s": n / seconds, "ms_per_image": 1000 * seconds / n}

    print(f"model: {model_dir} (input {input_size}, mask {mask_size}, "
          f"{bare.count_params():,} params); {args.images} JPEG photos, median of "
          f"{args.repeats}")
    print(f"{'path':18s} {'batch':>5s} {'images/s':>10s} {'ms/image':>9s} {'x bare':>7s}")
    for batch in ("batch_1", "batch_32"):
        base = results["bare_model"][batch]["ms_per_image"]
        for name in paths:
            row = results[name][batch]
            row["ratio_to_bare"] = row["ms_per_image"] / base
            print(f"{name:18s} {batch[6:]:>5s} {row['images_per_s']:10.1f} "
                  f"{row['ms_per_image']:9.2f} {row['ratio_to_bare']:7.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"model": model_dir, "results": results}, f, indent=2)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
