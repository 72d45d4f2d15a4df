"""The Beam batch job against pets-unet-predict on the same photo collection, side by side.

    .venv/bin/python bench/batch_predict.py --model SERVING_DIR_OR_VERSION [--photos 1000]
        [--repeats 1] [--masks-only]

Writes `--photos` photo files of mixed sizes (500x375 up to 4000x3000, seven sizes, a third of
them portrait; two JPEGs for each PNG) once, into outputs/bench/batch_photos_<N>/, cycling through
120 different photos: smooth colour fields plus fine grain, so JPEG and PNG sizes are those of
photos, not of flat colour or of pure noise. Then runs each side in its own process, interleaved
(the order flips every repeat):

  predict      `pets-unet-predict --model M <every photo> --out DIR`: per photo one call of the
               serving_images signature, then its mask PNG and its four-panel figure PNG
  batch        `pets-unet-batch-predict --model M --input DIR --output DIR`: the Beam job
               with its defaults (DirectRunner, one worker per CPU): mask PNGs, index, failures
  masks_only   (--masks-only) predict's own Segmenter and mask writing, without the figure:
               what pets-unet-predict costs for the masks alone

Reported per side: wall time from start to exit (imports and model loading included), photos/s,
and peak memory: the largest sum of resident memory over the process and all its children
(sampled every 0.1 s), and the largest single process. Also the CPU model and flags, and whether
the two sides' masks agree on a sample of photos. Writes outputs/bench/batch_predict.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

BIN = os.path.dirname(sys.executable)
# (width, height) of the landscape sizes; a third of the photos are turned to portrait.
SIZES = ((500, 375), (800, 600), (1024, 768), (1600, 1200), (2048, 1536), (3000, 2250),
         (4000, 3000))
MASKS_ONLY = """
import os, sys
import numpy as np
from PIL import Image
from model_code import predict
segmenter = predict.Segmenter(sys.argv[1])
paths, out = sys.argv[3:], sys.argv[2]
for path, name in predict.output_names(paths).items():
    with open(path, "rb") as f:
        _, class_ids = segmenter.segment(f.read())
    target = os.path.join(out, name + "_mask.png")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    Image.fromarray(class_ids.astype(np.uint8)).save(target)
"""


def _template(j: int, rng) -> tuple:
    """Photo template j: (extension, encoded bytes)."""
    from PIL import Image

    width, height = SIZES[j % len(SIZES)]
    if (j // 3) % 3 == 2:
        width, height = height, width
    fields = rng.integers(0, 256, (height // 60 + 2, width // 60 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(fields).resize((width, height), Image.BICUBIC))
    grain = rng.normal(0, 5, (512, 512, 3)).astype(np.int16)
    grain = np.tile(grain, (height // 512 + 1, width // 512 + 1, 1))[:height, :width]
    pixels = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    if j % 3 == 1:
        pixels.save(out, "PNG")
        return "png", out.getvalue()
    pixels.save(out, "JPEG", quality=90)
    return "jpg", out.getvalue()


def make_photos(folder: str, count: int, distinct: int = 120, seed: int = 0) -> list:
    """`count` photo files under `folder` (in ten subfolders), cycling through `distinct`
    different photos (encoding a 4000x3000 PNG takes seconds); listed in `folder`.json once
    complete, and reused when that list exists."""
    manifest = folder.rstrip("/") + ".json"
    if os.path.exists(manifest):
        with open(manifest) as f:
            return json.load(f)["photos"]
    rng = np.random.default_rng(seed)
    templates = [_template(j, rng) for j in range(min(count, distinct))]
    photos = []
    for i in range(count):
        extension, data = templates[i % len(templates)]
        path = os.path.join(folder, f"set{i % 10}", f"photo{i:04d}.{extension}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        photos.append(path)
    with open(manifest, "w") as f:
        json.dump({"photos": photos}, f)
    return photos


def measure(command: list, log: str) -> dict:
    """Runs `command` (its output to `log`); its wall time and peak memory (the process tree's
    sum, and its largest process)."""
    import psutil

    start = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        root, peak_sum, peak_one = psutil.Process(process.pid), 0, 0
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            rss = []
            for member in tree:
                try:
                    rss.append(member.memory_info().rss)
                except psutil.Error:
                    pass
            peak_sum, peak_one = max(peak_sum, sum(rss)), max([peak_one, *rss])
            time.sleep(0.1)
        process.wait()
    seconds = time.monotonic() - start
    with open(log) as f:
        tail = f.read()[-3000:]
    if process.returncode:
        raise RuntimeError(f"{command[0]} exited {process.returncode}:\n{tail}")
    return {"seconds": seconds, "peak_rss_sum_mb": peak_sum / 2 ** 20,
            "peak_rss_largest_process_mb": peak_one / 2 ** 20, "output_tail": tail[-600:]}


def commands(side: str, model: str, photos_dir: str, photos: list, out: str) -> list:
    if side == "predict":
        return [os.path.join(BIN, "pets-unet-predict"), "--model", model, *photos, "--out", out]
    if side == "batch":
        return [os.path.join(BIN, "pets-unet-batch-predict"), "--model", model, "--input",
                photos_dir, "--output", out]
    return [sys.executable, "-c", MASKS_ONLY, model, out, *photos]


def masks_agree(photos: list, predict_out: str, batch_out: str, photos_dir: str,
                sample: int = 20) -> bool:
    """The same class ids from both sides on `sample` photos spread over the sizes."""
    from PIL import Image

    from model_code import predict

    names = predict.output_names(photos)
    for path in photos[::max(1, len(photos) // sample)]:
        a = np.asarray(Image.open(os.path.join(predict_out, names[path] + "_mask.png")))
        b = np.asarray(Image.open(os.path.join(
            batch_out, os.path.relpath(path, photos_dir) + ".mask.png")))
        if a.shape != b.shape or not np.array_equal(a, b):
            return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "outputs", "demo", "serving_model"))
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--masks-only", action="store_true",
                        help="also time predict's per-photo path without its figure")
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)

    from trainer_bench import cpu_description

    from model_code.predict import UsageError, resolve_model_dir

    try:
        model = resolve_model_dir(args.model)
    except UsageError as err:
        print(f"error: {err} (run `make run` first, or pass --model)", file=sys.stderr)
        return 2
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}")
    print(f"model: {model}")
    photos_dir = os.path.join(args.out, f"batch_photos_{args.photos}")
    started = time.monotonic()
    photos = make_photos(photos_dir, args.photos)
    megabytes = sum(os.path.getsize(p) for p in photos) / 1e6
    print(f"{len(photos)} photos in {photos_dir} ({megabytes:,.0f} MB; "
          f"{time.monotonic() - started:.0f} s to make or find)", flush=True)

    sides = ["predict", "batch"] + (["masks_only"] if args.masks_only else [])
    runs = {side: [] for side in sides}
    scratch = tempfile.mkdtemp(prefix="batch_bench_")
    kept = {}
    try:
        for repeat in range(args.repeats):
            for side in (sides if repeat % 2 == 0 else sides[::-1]):
                out = os.path.join(scratch, f"{side}_{repeat}")
                run = measure(commands(side, model, photos_dir, photos, out), out + ".log")
                run["photos_per_s"] = len(photos) / run["seconds"]
                runs[side].append(run)
                print(f"  {side:10s} {run['seconds']:7.1f} s  {run['photos_per_s']:6.2f} photos/s"
                      f"  peak RSS {run['peak_rss_sum_mb']:,.0f} MB (largest process "
                      f"{run['peak_rss_largest_process_mb']:,.0f} MB)", flush=True)
                if side in ("predict", "batch") and side not in kept:
                    kept[side] = out
                else:
                    shutil.rmtree(out, ignore_errors=True)
        agree = masks_agree(photos, kept["predict"], kept["batch"], photos_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    summary = {side: {key: statistics.median(r[key] for r in runs[side])
                      for key in ("seconds", "photos_per_s", "peak_rss_sum_mb",
                                  "peak_rss_largest_process_mb")} for side in sides}
    print(f"\n== {len(photos):,} photos, median of {args.repeats} ==")
    for side in sides:
        row = summary[side]
        print(f"  {side:10s} {row['photos_per_s']:6.2f} photos/s  "
              f"{row['photos_per_s'] / summary['predict']['photos_per_s']:5.2f}x predict  "
              f"peak RSS {row['peak_rss_sum_mb']:,.0f} MB")
    print(f"  masks identical on a sample of 20: {agree}")
    result_file.save(args.out, "batch_predict.json",
                     {"cpu": cpu, "model": model, "photos": len(photos),
                      "photos_megabytes": megabytes, "summary": summary, "runs": runs,
                      "masks_agree": agree})
    return 0


if __name__ == "__main__":
    sys.exit(main())
