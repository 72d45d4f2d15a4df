"""Segmentation metrics that tf_keras lacks in the form TFMA needs.

TFMA hands Keras metrics one weight per example ([batch, 1]); tf_keras' MeanIoU flattens labels to
pixels and then cannot match those weights. `PixelMeanIoU` spreads each example's weight over its
pixels and is otherwise tf_keras' MeanIoU (used by the Trainer and by TFMA by the same name).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="pets_unet")
class PixelMeanIoU(keras.metrics.MeanIoU):
    """Mean IoU over classes from per-pixel labels [B, H, W] and scores [B, H, W, C]."""

    def __init__(self, num_classes: int, name: str = "mean_iou", **kwargs):
        kwargs.setdefault("sparse_y_pred", False)
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            y_true = tf.convert_to_tensor(y_true)
            sample_weight = tf.convert_to_tensor(sample_weight)
            if sample_weight.shape.rank is not None and sample_weight.shape.rank <= 2:
                per_example = tf.reshape(sample_weight, [-1] + [1] * (y_true.shape.rank - 1))
                sample_weight = tf.broadcast_to(per_example, tf.shape(y_true))
        return super().update_state(y_true, y_pred, sample_weight)
