"""Per-pixel segmentation metrics, as tf_keras metrics that TFMA and the Trainer both use.

All of them accumulate one pixel confusion matrix (tf_keras' IoU machinery) and read a different
number off it: mean IoU, IoU of one class, Dice/F1 of one class, or one cell of the row-normalised
confusion matrix. What tf_keras lacks, and the reason this module exists: TFMA hands Keras metrics
one weight per example ([batch, 1]), which tf_keras' IoU cannot match to its flattened pixels;
here each example's weight is spread over its pixels.

The one-class metrics take `class_index`, not Keras' usual `class_id`: TFMA treats a `class_id`
in a metric's config as its own sub-key and binarises labels and predictions before the metric
sees them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

# The names these metrics carry in TFMA's results (the Evaluator's config and the report use them).
MEAN_IOU = "mean_iou"
PIXEL_ACCURACY = "pixel_accuracy"


def iou_name(class_name: str) -> str:
    return f"iou_{class_name}"


def dice_name(class_name: str) -> str:
    return f"dice_{class_name}"


def confusion_name(true_name: str, predicted_name: str) -> str:
    return f"confusion_{true_name}_as_{predicted_name}"


class _PixelConfusionBase(keras.metrics.IoU):
    """Pixel confusion matrix from labels [B, H, W] and class scores [B, H, W, C]."""

    @tf.autograph.experimental.do_not_convert  # Keras may build metrics while tracing fit()
    def __init__(self, num_classes: int, target_class_ids: Sequence[int],
                 name: Optional[str] = None, **kwargs):
        kwargs.setdefault("sparse_y_pred", False)
        super().__init__(num_classes=num_classes, target_class_ids=list(target_class_ids),
                         name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            y_true = tf.convert_to_tensor(y_true)
            sample_weight = tf.convert_to_tensor(sample_weight)
            if sample_weight.shape.rank is not None and sample_weight.shape.rank <= 2:
                per_example = tf.reshape(sample_weight, [-1] + [1] * (y_true.shape.rank - 1))
                sample_weight = tf.broadcast_to(per_example, tf.shape(y_true))
        return super().update_state(y_true, y_pred, sample_weight)

    def _matrix(self):
        return tf.cast(self.total_cm, self._dtype)


@keras.saving.register_keras_serializable(package="pets_unet")
class PixelMeanIoU(_PixelConfusionBase):
    """IoU averaged over the classes that occur (in labels or predictions)."""

    @tf.autograph.experimental.do_not_convert
    def __init__(self, num_classes: int, name: str = "mean_iou", **kwargs):
        kwargs.pop("target_class_ids", None)
        super().__init__(num_classes, range(num_classes), name=name, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("target_class_ids", None)
        return config


@keras.saving.register_keras_serializable(package="pets_unet")
class PixelClassIoU(_PixelConfusionBase):
    """IoU of one class: TP / (TP + FP + FN)."""

    @tf.autograph.experimental.do_not_convert
    def __init__(self, num_classes: int, class_index: int, name: Optional[str] = None, **kwargs):
        kwargs.pop("target_class_ids", None)
        self.class_index = class_index
        super().__init__(num_classes, [class_index], name=name or f"iou_{class_index}", **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("target_class_ids", None)
        return dict(config, class_index=self.class_index)


@keras.saving.register_keras_serializable(package="pets_unet")
class PixelDice(PixelClassIoU):
    """Dice coefficient (pixel F1) of one class: 2 TP / (2 TP + FP + FN)."""

    def result(self):
        cm = self._matrix()
        tp = cm[self.class_index, self.class_index]
        return tf.math.divide_no_nan(
            2 * tp, tf.reduce_sum(cm[self.class_index, :]) + tf.reduce_sum(cm[:, self.class_index]))


@keras.saving.register_keras_serializable(package="pets_unet")
class PixelConfusion(_PixelConfusionBase):
    """Share of the pixels of true class `true_class` that were predicted as `predicted_class`
    (one cell of the row-normalised confusion matrix)."""

    @tf.autograph.experimental.do_not_convert
    def __init__(self, num_classes: int, true_class: int, predicted_class: int,
                 name: Optional[str] = None, **kwargs):
        kwargs.pop("target_class_ids", None)
        self.true_class, self.predicted_class = true_class, predicted_class
        super().__init__(num_classes, [true_class],
                         name=name or f"confusion_{true_class}_as_{predicted_class}", **kwargs)

    def result(self):
        row = self._matrix()[self.true_class]
        return tf.math.divide_no_nan(row[self.predicted_class], tf.reduce_sum(row))

    def get_config(self):
        config = super().get_config()
        config.pop("target_class_ids", None)
        return dict(config, true_class=self.true_class, predicted_class=self.predicted_class)
