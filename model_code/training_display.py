"""What training shows while it runs: one line per epoch, and pictures in TensorBoard.

* EpochLine: one line per epoch with the logged metrics, for logs and pipes (a terminal gets
  Keras' own progress bar instead).
* ImageSummaries: every epoch, a fixed handful of eval examples as input / true mask / predicted
  mask (model_code.visualize's panels), and the pixel confusion matrix of the validation data
  as a picture, written with `tf.summary.image` under `<log_dir>/images`, beside Keras'
  TensorBoard scalars. Keras' TensorBoard callback writes scalars and graphs only.
"""
from __future__ import annotations

import io
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from model_code.labels import CLASS_NAMES

IMAGES_DIR = "images"
EXAMPLES_TAG = "examples"
CONFUSION_TAG = "pixel_confusion_matrix"


class EpochLine(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        values = ", ".join(f"{name} {value:.4f}" for name, value in sorted((logs or {}).items())
                           if name != "learning_rate")
        print(f"  epoch {epoch + 1}/{self.params.get('epochs')}: {values} "
              f"({time.monotonic() - self._started:.1f} s)", flush=True)


def confusion_figure(matrix: np.ndarray, num_classes: int) -> np.ndarray:
    """A row-normalised confusion matrix drawn as an RGB image [H, W, 3]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    names = CLASS_NAMES[:num_classes]
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=80)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for t in range(num_classes):
        for p in range(num_classes):
            ax.text(p, t, f"{100 * rows[t, p]:.0f}%", ha="center", va="center",
                    color="white" if rows[t, p] > 0.5 else "black")
    ax.set_xticks(range(num_classes), names)
    ax.set_yticks(range(num_classes), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return np.asarray(Image.open(buffer).convert("RGB"))


class ImageSummaries(keras.callbacks.Callback):
    """Writes the example panels and the confusion matrix to TensorBoard every epoch."""

    def __init__(self, log_dir: str, validation: tf.data.Dataset, steps: int, num_classes: int,
                 num_examples: int = 4):
        super().__init__()
        self.validation, self.steps, self.num_classes = validation, steps, num_classes
        batches = list(validation.take(steps).as_numpy_iterator())
        images = np.concatenate([b[0] for b in batches])[:num_examples]
        masks = np.concatenate([b[1] for b in batches])[:num_examples]
        self.examples = (images, masks)
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, IMAGES_DIR))

    def on_epoch_end(self, epoch, logs=None):
        from model_code.visualize import four_panels

        images, masks = self.examples
        predicted = np.argmax(self.model.predict(images, verbose=0), axis=-1)
        margin = (images.shape[1] - masks.shape[1]) // 2  # the masks cover the centre frame
        frames = images[:, margin:images.shape[1] - margin, margin:images.shape[2] - margin]
        panels = [np.asarray(four_panels((255 * frames[i]).astype(np.uint8), predicted[i],
                                         masks[i])) for i in range(len(images))]
        matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        for batch in self.validation.take(self.steps):
            guess = np.argmax(self.model.predict(batch[0], verbose=0), axis=-1).ravel()
            truth = np.asarray(batch[1]).ravel()
            np.add.at(matrix, (truth, guess), 1)
        with self.writer.as_default():
            tf.summary.image(EXAMPLES_TAG, np.stack(panels), step=epoch,
                             max_outputs=len(panels),
                             description="input image | true mask | predicted mask | overlay")
            tf.summary.image(CONFUSION_TAG, confusion_figure(matrix, self.num_classes)[None],
                             step=epoch, description="rows: true class, row-normalised")
        self.writer.flush()
