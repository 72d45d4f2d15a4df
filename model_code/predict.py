"""Segment image files with a pushed model: class-id mask PNGs and the tutorial's figure.

    python -m model_code.predict --model outputs/demo/serving_model cat.jpg dog.png --out masks/
    pets-unet-predict --model SERVING_DIR_OR_VERSION IMAGE... --out DIR [--true-mask-dir DIR]

For each IMAGE it writes `<name>_mask.png` (class ids at the image's own resolution: 0 pet,
1 background, 2 border) and `<name>_panels.png` (input, [true mask,] predicted mask, overlay).
Images from several folders keep their folders below DIR (relative to the folder they share),
and two images whose names differ only in their extension keep it (`cat_jpg_mask.png`), so no
output overwrites another. Given the serving directory it uses the newest pushed version.

A file that cannot be segmented (not an image, a format TensorFlow cannot read, larger than the
model's image-size limit) is reported by name with the reason in words and skipped; the others
are still segmented and the exit status is then 1. Argument and model errors exit 2.

Photos are segmented as people see them: a JPEG's EXIF orientation tag (how phones store upright
photos taken sideways) is applied first, so the mask and the figure line up with the photo in any
viewer. The model's `serving_images` signature itself decodes with TensorFlow, which ignores EXIF;
API clients should rotate first (e.g. Pillow's `ImageOps.exif_transpose`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from model_code.image_input import READABLE

SAVED_MODEL = "saved_model.pb"


class UsageError(Exception):
    """An argument names nothing usable: the model, the output folder, the trimap folder."""


def resolve_model_dir(path: str) -> str:
    """`path` itself if it is a SavedModel, else its newest version folder (largest number)."""
    if os.path.isfile(os.path.join(path, SAVED_MODEL)):
        return path
    if not os.path.isdir(path):
        raise UsageError(f"--model {path}: no such directory")
    versions = [name for name in os.listdir(path)
                if os.path.isfile(os.path.join(path, name, SAVED_MODEL))]
    if not versions:
        raise UsageError(f"--model {path}: no SavedModel in it or in a version folder")
    newest = max(versions, key=lambda name: (name.isdigit(), int(name) if name.isdigit() else 0,
                                             name))
    return os.path.join(path, newest)


def model_limit(model_dir: str) -> int:
    """The image-size limit the model was exported with (its training record), else today's."""
    from model_code import precision
    from model_code.config import DEFAULT_MAX_IMAGE_PIXELS

    record = precision.read_record(model_dir) or {}
    return int(record.get("config", {}).get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))


class Segmenter:
    """Calls the model's `serving_images` signature one image at a time."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self._tf = tf
        self.model_dir = resolve_model_dir(model_dir)
        try:
            self._model = tf.saved_model.load(self.model_dir)
            self._serve = self._model.signatures["serving_images"]
            self.max_pixels = model_limit(self.model_dir)
        except KeyError:
            raise UsageError(f"--model {self.model_dir}: this SavedModel has no serving_images "
                             "signature; is it a model this pipeline pushed?") from None
        except Exception as err:  # TensorFlow raises many kinds for a damaged SavedModel
            reason = (getattr(err, "message", None) or str(err) or type(err).__name__)
            raise UsageError(f"--model {self.model_dir}: not a loadable SavedModel "
                             f"({reason.splitlines()[0][:200]})") from None

    def segment(self, data: bytes) -> Tuple[np.ndarray, np.ndarray]:
        """Returns (image [H, W, 3] uint8, class ids [H, W]); ValueError in words for a file
        it cannot segment."""
        from model_code import image_input

        tf = self._tf
        image_input.check(data, self.max_pixels)
        data = image_input.upright(data)
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        except (tf.errors.InvalidArgumentError, ValueError) as err:
            raise ValueError(image_input.decode_failure(err)) from None
        if image.size == 0:
            raise ValueError(f"zero-sized image ({image.shape[1]}x{image.shape[0]})")
        out = self._serve(images=tf.constant([data]))
        class_ids = tf.io.decode_png(out["mask_png_bytes"][0]).numpy()[..., 0]
        return image, class_ids


def output_names(paths: List[str]) -> Dict[str, str]:
    """Each input path -> its output name below --out, without `_mask.png`: the path relative to
    the inputs' common folder, without its extension unless two inputs would then collide."""
    absolute = [os.path.abspath(path) for path in paths]
    common = os.path.commonpath([os.path.dirname(path) for path in absolute])
    relative = [os.path.relpath(path, common) for path in absolute]
    stems = [os.path.splitext(path)[0] for path in relative]
    names = {}
    for path, rel, stem in zip(paths, relative, stems):
        ext = os.path.splitext(rel)[1]
        names[path] = stem if stems.count(stem) == 1 else f"{stem}_{ext.lstrip('.')}"
    return names


def _true_mask(mask_dir: Optional[str], stem: str) -> Optional[np.ndarray]:
    """The trimap for `stem` as class ids, None when there is none; ValueError when unreadable."""
    if not mask_dir:
        return None
    path = os.path.join(mask_dir, stem + ".png")
    if not os.path.isfile(path):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as trimap:
            if trimap.format != "PNG":
                raise ValueError(f"{path} is a {trimap.format}, not a PNG trimap")
            return np.asarray(trimap).astype(np.int64) - 1  # trimap 1..3 -> class ids 0..2
    except (OSError, UnidentifiedImageError):
        raise ValueError(f"{path} is not a readable PNG trimap") from None


def predict_files(segmenter: Segmenter, paths: List[str], out_dir: str,
                  true_mask_dir: Optional[str] = None) -> List[Tuple[str, str]]:
    """Writes outputs for every image it can segment; returns (path, reason) for the others."""
    from PIL import Image

    from model_code.visualize import four_panels

    failures = []
    for path, name in output_names(paths).items():
        try:
            with open(path, "rb") as f:
                data = f.read()
            image, class_ids = segmenter.segment(data)
        except (OSError, ValueError) as err:
            reason = str(err) if isinstance(err, ValueError) else err.strerror or str(err)
            failures.append((path, reason))
            print(f"error: {path}: {reason}", file=sys.stderr)
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            truth = _true_mask(true_mask_dir, stem)
        except ValueError as err:
            print(f"warning: {err}; the figure is drawn without it", file=sys.stderr)
            truth = None
        if truth is not None and truth.shape != class_ids.shape:
            print(f"warning: the trimap of {path} is {truth.shape[1]}x{truth.shape[0]}, the "
                  f"image {class_ids.shape[1]}x{class_ids.shape[0]}; the figure is drawn "
                  "without it", file=sys.stderr)
            truth = None
        target = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.fromarray(class_ids.astype(np.uint8)).save(f"{target}_mask.png")
        four_panels(image, class_ids, truth).save(f"{target}_panels.png")
        print(f"{path}: {target}_{{mask,panels}}.png")
    return failures


def _check_out_dir(out_dir: str) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out {out_dir} is a file; name a folder (it is created if missing)")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out_dir}: cannot create it ({err.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise UsageError(f"--out {out_dir}: not writable")


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
        _check_out_dir(args.out)
        if args.true_mask_dir and not os.path.isdir(args.true_mask_dir):
            raise UsageError(f"--true-mask-dir {args.true_mask_dir}: no such folder")
        segmenter = Segmenter(args.model)
    except UsageError as err:
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
