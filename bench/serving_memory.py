"""Peak memory of one `serving_images` call: what is sent, not the batch's largest image, decides.

    .venv/bin/python bench/serving_memory.py [--model SERVING_DIR_OR_VERSION]

Each case runs in a fresh process that loads the model, calls the signature once and reports its
peak RSS (getrusage) and the call's seconds; "model loaded" is the same process with one tiny
image, the floor every case starts from. Cases (issue 19): 64 photos of 500x375; one 6000x4000
photo plus 63 of 500x375; a 13000x13000 PNG of 160 KB (refused from its header). Goals: at most
1.2 GB, 2.5 GB and 1.5 GB (refused in under 2 s). Results: stdout and
outputs/bench/serving_memory.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # hostile_images: the bomb the tests send too

CASES = {
    "model loaded (one 20x20 image)": ([], 1, 20, 20),
    "64 photos of 500x375": ([], 64, 375, 500),
    "one 6000x4000 photo + 63 of 500x375": ([(4000, 6000)], 63, 375, 500),
    "a 13000x13000 PNG bomb (refused)": (["bomb"], 0, 0, 0),
}
GOALS_MB = {"64 photos of 500x375": 1200, "one 6000x4000 photo + 63 of 500x375": 2500,
            "a 13000x13000 PNG bomb (refused)": 1500}


def _photo(height: int, width: int, seed: int) -> bytes:
    """A JPEG of smooth colour fields with grain, so it compresses like a photo."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), np.int16)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(out, "JPEG",
                                                                            quality=90)
    return out.getvalue()


def _one_case(model_dir: str, name: str) -> dict:
    """Runs in the child: build the request, load the model, call once, report."""
    import tensorflow as tf

    from hostile_images import png_bomb

    big, count, height, width = CASES[name]
    images = [png_bomb(13000) if item == "bomb" else _photo(*item, seed=99) for item in big]
    images += [_photo(height, width, seed=i) for i in range(count)]
    serve = tf.saved_model.load(model_dir).signatures["serving_images"]
    started = time.perf_counter()
    try:
        out = serve(images=tf.constant(images))
        outcome = f"ok, {int(tf.reduce_sum(tf.strings.length(out['mask_png_bytes'])))} PNG bytes"
    except tf.errors.InvalidArgumentError as err:
        outcome = "refused: " + err.message.split("assertion failed: [")[-1].split("]")[0]
    seconds = time.perf_counter() - started
    return {"case": name, "request_mb": sum(map(len, images)) / 1e6, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "outcome": outcome}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "outputs", "demo", "serving_model"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args(argv)
    from model_code.predict import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    if args.case:
        print(json.dumps(_one_case(model_dir, args.case)))
        return 0

    from bench import result_file
    from bench.trainer_bench import cpu_description

    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags: {' '.join(cpu['flags'])}")
    print(f"model: {model_dir}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    rows = []
    for name in CASES:
        done = subprocess.run([sys.executable, __file__, "--model", model_dir, "--case", name],
                              capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if done.returncode:
            rows.append({"case": name, "outcome": f"process died ({done.returncode})",
                         "peak_rss_mb": None, "seconds": None, "request_mb": None})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        goal = GOALS_MB.get(name)
        print(f"{name:40s} peak {row['peak_rss_mb'] or 0:7.0f} MB"
              f"{f' (goal <= {goal})' if goal else '':18s} call {row['seconds'] or 0:6.2f} s"
              f"  request {row['request_mb'] or 0:6.2f} MB  {row['outcome']}", flush=True)
    result_file.save(os.path.join(ROOT, "outputs", "bench"), "serving_memory.json",
                     {"cpu": cpu, "model": model_dir, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
