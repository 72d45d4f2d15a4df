"""Segment image files with a pushed model: class-id mask PNGs and the tutorial's figure.

    python -m model_code.predict --model outputs/demo/serving_model cat.jpg dog.png --out masks/
    pets-unet-predict --model SERVING_DIR_OR_VERSION IMAGE... --out DIR [--true-mask-dir DIR]

For each IMAGE it writes `<name>_mask.png` (class ids at the image's own resolution: 0 pet,
1 background, 2 border) and `<name>_panels.png` (input, [true mask,] predicted mask, overlay).
Given the serving directory it uses the newest pushed version. A file that cannot be read as an
image is reported by name, with the reason in words, and skipped; the exit status is then 1.

Photos are segmented as people see them: a JPEG's EXIF orientation tag (how phones store upright
photos taken sideways) is applied first, so the mask and the figure line up with the photo in any
viewer. The model's `serving_images` signature itself decodes with TensorFlow, which ignores EXIF;
API clients should rotate first (e.g. Pillow's `ImageOps.exif_transpose`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

import numpy as np

SAVED_MODEL = "saved_model.pb"
READABLE = "JPEG, PNG, GIF or BMP"


def unsupported_format(data: bytes) -> Optional[str]:
    """A plain-words reason for common photo formats TensorFlow cannot decode, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC/HEIF"
        if brand in (b"avif", b"avis"):
            return "AVIF"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    return None


def upright(data: bytes) -> bytes:
    """The bytes of the image as displayed: a JPEG with an EXIF rotation is turned upright (and
    re-encoded losslessly as PNG); everything else is returned unchanged."""
    if data[:2] != b"\xff\xd8":
        return data
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.getexif().get(0x0112, 1) in (1, None):  # Orientation: as stored
                return data
            turned = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError):  # not readable by Pillow either: TensorFlow will say so
        return data
    out = io.BytesIO()
    turned.save(out, "PNG")
    return out.getvalue()


def resolve_model_dir(path: str) -> str:
    """`path` itself if it is a SavedModel, else its newest version folder (largest number)."""
    if os.path.isfile(os.path.join(path, SAVED_MODEL)):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--model {path}: no such directory")
    versions = [name for name in os.listdir(path)
                if os.path.isfile(os.path.join(path, name, SAVED_MODEL))]
    if not versions:
        raise FileNotFoundError(f"--model {path}: no SavedModel in it or in a version folder")
    newest = max(versions, key=lambda name: (name.isdigit(), int(name) if name.isdigit() else 0,
                                             name))
    return os.path.join(path, newest)


class Segmenter:
    """Calls the model's `serving_images` signature one image at a time."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self._tf = tf
        self.model_dir = resolve_model_dir(model_dir)
        self._model = tf.saved_model.load(self.model_dir)
        self._serve = self._model.signatures["serving_images"]

    def segment(self, data: bytes) -> Tuple[np.ndarray, np.ndarray]:
        """Returns (image [H, W, 3] uint8, class ids [H, W]); ValueError for a non-image."""
        tf = self._tf
        if not data:
            raise ValueError("empty file")
        kind = unsupported_format(data)
        if kind:
            raise ValueError(f"{kind} images are not supported; convert to JPEG or PNG")
        data = upright(data)
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        except (tf.errors.InvalidArgumentError, ValueError):
            raise ValueError(f"not an image this model reads ({READABLE}), or a damaged "
                             "one") from None
        if image.size == 0:
            raise ValueError(f"zero-sized image ({image.shape[1]}x{image.shape[0]})")
        out = self._serve(images=tf.constant([data]))
        height, width = out["image_size"].numpy()[0]
        return image, out["full_resolution_class_ids"].numpy()[0, :height, :width]


def _true_mask(mask_dir: Optional[str], stem: str) -> Optional[np.ndarray]:
    if not mask_dir:
        return None
    path = os.path.join(mask_dir, stem + ".png")
    if not os.path.isfile(path):
        return None
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.int64) - 1  # trimap 1..3 -> class ids 0..2


def predict_files(segmenter: Segmenter, paths: List[str], out_dir: str,
                  true_mask_dir: Optional[str] = None) -> List[Tuple[str, str]]:
    """Writes outputs for every readable image; returns (path, reason) for the others."""
    from PIL import Image

    from model_code.visualize import four_panels

    os.makedirs(out_dir, exist_ok=True)
    failures = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path, "rb") as f:
                data = f.read()
            image, class_ids = segmenter.segment(data)
        except (OSError, ValueError) as err:
            reason = str(err) if isinstance(err, ValueError) else err.strerror or str(err)
            failures.append((path, reason))
            print(f"error: {path}: {reason}", file=sys.stderr)
            continue
        Image.fromarray(class_ids.astype(np.uint8)).save(os.path.join(out_dir, f"{stem}_mask.png"))
        four_panels(image, class_ids, _true_mask(true_mask_dir, stem)).save(
            os.path.join(out_dir, f"{stem}_panels.png"))
        print(f"{path}: {os.path.join(out_dir, stem)}_{{mask,panels}}.png")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="a pushed model version, or the serving dir (newest version is used)")
    parser.add_argument("images", nargs="+", help=f"image files ({READABLE})")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--true-mask-dir", help="folder of trimaps named <image name>.png "
                        "(Oxford-Pets annotations/trimaps) to show beside the prediction")
    args = parser.parse_args(argv)
    try:
        segmenter = Segmenter(args.model)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {segmenter.model_dir}")
    failures = predict_files(segmenter, args.images, args.out, args.true_mask_dir)
    if failures:
        print(f"{len(failures)} of {len(args.images)} files failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
