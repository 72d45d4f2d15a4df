"""The batch job's steps for each photo: read and check it, segment it, write its mask.

`ReadAndCheck` turns (path, mask name) into a `Photo` (checked, upright, encoded bytes) or a
`Failed`; RunInference runs `ImagesModelHandler` on batches of Photos, each coming back as a
`Segmented` (its full-resolution mask PNG and class fractions) or a `Failed`; `WriteMask` writes
the mask and yields the photo's index row. Every `Failed` carries the reason in words. The job
itself is put together in model_code.batch_predict.
"""
from __future__ import annotations

import dataclasses
import math
import os
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler

from model_code.labels import CLASS_NAMES

NAMESPACE = "pets_unet_batch_predict"  # of its Beam metrics

SIGNATURE = "serving_images"
# A batch holds at most BATCH_UNITS photos and about BATCH_UNITS * PIXELS_PER_UNIT pixels: a
# photo weighs one unit per PIXELS_PER_UNIT pixels (at least one, at most BATCH_UNITS), so 16
# small photos or two 12-megapixel ones go together, and one near the 120-megapixel limit goes
# alone. The signature holds a batch's images decoded at once, about 3.5 bytes per pixel
# (measured: one 100-megapixel JPEG added 350 MB to its peak, two 685 MB), hence the bound in
# pixels; batches of big photos gain nothing from being larger (their cost is per pixel).
BATCH_UNITS = 16
PIXELS_PER_UNIT = 1_500_000


@dataclasses.dataclass(frozen=True)
class Photo:
    """One checked, upright photo: its input path, its output name and its encoded bytes."""
    path: str
    name: str
    data: bytes
    pixels: int  # from its header; 0 when the header is of no format we know


@dataclasses.dataclass(frozen=True)
class Segmented:
    path: str
    name: str
    width: int
    height: int
    mask_png: bytes
    fractions: Tuple[float, ...]  # per class, in model_code.labels.CLASS_NAMES order


@dataclasses.dataclass(frozen=True)
class Failed:
    path: str
    reason: str


def batch_weight(photo: Photo) -> int:
    """The photo's share of a batch, in units of BATCH_UNITS (BatchElements' element_size_fn)."""
    return min(BATCH_UNITS, max(1, math.ceil(photo.pixels / PIXELS_PER_UNIT)))


class ImagesModelHandler(ModelHandler[Photo, Union[Segmented, Failed], Any]):
    """Loads the SavedModel once per worker and segments batches of photos with it.

    Hand-written because Beam 2.61's ready-made TensorFlow handler
    (apache_beam.ml.inference.tensorflow_inference) cannot be imported with TensorFlow 2.16: it
    imports tensorflow_hub 0.15, which needs the Estimator API that TensorFlow 2.16 removed.
    It would not fit either: it feeds one numeric tensor to a Keras model's `predict`, where this
    model takes encoded image bytes through a named signature and answers per image.

    The signature fails a whole call when one image of it cannot be decoded; such a batch is run
    again one photo at a time, so only the bad photo fails (as a `Failed` with the reason).
    Decoding each photo beforehand would catch the same files but double the costliest step
    (decoding full-size photos) for every good one; bad files are rare, so the retry costs
    little. Photos over the size limit never get here: the caller checks each header first.
    """

    def __init__(self, model_dir: str):
        super().__init__()
        self._model_dir = model_dir

    def load_model(self) -> Any:
        import tensorflow as tf

        model = tf.saved_model.load(self._model_dir)
        if SIGNATURE not in model.signatures:
            raise ValueError(f"{self._model_dir} has no {SIGNATURE} signature")
        return model  # the signature needs the loaded object kept alive, not just itself

    def run_inference(self, batch: Sequence[Photo], model: Any,
                      inference_args: Optional[Dict[str, Any]] = None
                      ) -> Iterable[Union[Segmented, Failed]]:
        import tensorflow as tf

        from model_code import image_input

        try:
            return self._segment(batch, model)
        except tf.errors.OpError as err:
            if len(batch) == 1:
                return [Failed(batch[0].path, image_input.decode_failure(err))]
            return [result for photo in batch for result in self.run_inference([photo], model)]

    @staticmethod
    def _segment(batch: Sequence[Photo], model: Any) -> List[Segmented]:
        import tensorflow as tf

        out = model.signatures[SIGNATURE](images=tf.constant([photo.data for photo in batch]))
        pngs = out["mask_png_bytes"].numpy()
        sizes = out["image_size"].numpy()
        fractions = out["class_fractions"].numpy()
        return [Segmented(photo.path, photo.name, int(size[1]), int(size[0]), png,
                          tuple(float(f) for f in shares))
                for photo, png, size, shares in zip(batch, pngs, sizes, fractions)]

    def get_num_bytes(self, batch: Sequence[Photo]) -> int:
        return sum(len(photo.data) for photo in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": BATCH_UNITS,
                "element_size_fn": batch_weight}


class _Progress:
    """Appends one byte per finished photo to a local file the launching process watches."""

    def __init__(self, path: Optional[str]):
        self._path, self._fd = path, None

    def done(self) -> None:
        if self._path is None:
            return
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        os.write(self._fd, b".")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ReadAndCheck(beam.DoFn):
    """(path, mask name) -> a Photo ready for the model, or a Failed with the reason in words.

    Every photo is checked here, alone, from its header (empty, a format TensorFlow cannot
    decode, over the size limit the model was exported with): the signature refuses a whole
    batch for one photo over the limit. A JPEG's EXIF orientation is applied here too."""

    def __init__(self, model_dir: str, progress: Optional[str]):
        self._model_dir, self._progress_path = model_dir, progress

    def setup(self):
        from model_code import predict

        self._max_pixels = predict.model_limit(self._model_dir)
        self._progress = _Progress(self._progress_path)
        self._failed = beam.metrics.Metrics.counter(NAMESPACE, "failed")

    def process(self, element):
        from model_code import image_input

        path, name = element
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                data = f.read()
        except Exception as err:  # OSError locally, BeamIOError or a client error remotely
            yield self._fail(path, "cannot read it: " + (getattr(err, "strerror", None)
                                                        or str(err).splitlines()[0][:200]))
            return
        try:
            height, width = image_input.check(data, self._max_pixels)
            data = image_input.upright(data)
        except ValueError as err:
            yield self._fail(path, str(err))
            return
        yield Photo(path, name, data, height * width)

    def _fail(self, path: str, reason: str):
        self._failed.inc()
        self._progress.done()
        return beam.pvalue.TaggedOutput("failed", Failed(path, reason))

    def teardown(self):
        self._progress.close()


class WriteMask(beam.DoFn):
    """Segmented -> its mask PNG written under `output_folder`, and its index row; a Failed
    passes on. A mask that cannot be written fails the job: the output is at fault, not the
    photo."""

    def __init__(self, output_folder: str, version: str, progress: Optional[str]):
        self._output, self._version, self._progress_path = output_folder, version, progress

    def setup(self):
        self._progress = _Progress(self._progress_path)
        self._segmented = beam.metrics.Metrics.counter(NAMESPACE, "segmented")
        self._failed = beam.metrics.Metrics.counter(NAMESPACE, "failed")

    def process(self, result):
        if isinstance(result, Failed):
            self._failed.inc()
            self._progress.done()
            yield beam.pvalue.TaggedOutput("failed", result)
            return
        write_whole(self._output + result.name, result.mask_png)
        self._segmented.inc()
        self._progress.done()
        row = {"path": result.path, "mask": result.name, "width": result.width,
               "height": result.height}
        row.update({f"{name}_fraction": round(share, 6)
                    for name, share in zip(CLASS_NAMES, result.fractions)})
        row["model_version"] = self._version
        yield row

    def teardown(self):
        self._progress.close()


def write_whole(target: str, data: bytes) -> None:
    """Writes `data` so that `target` is never seen half-written (a rerun replaces it whole)."""
    if "://" in target:  # an object store shows an object only once it is complete
        with FileSystems.create(target) as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = f"{target}.tmp-{uuid.uuid4().hex}"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
