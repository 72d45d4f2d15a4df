"""The TFMA configuration that measures a trained U-Net and decides whether it is blessed.

Metrics are computed by TFMA inside the Evaluator on the held-out `test` split, through the model's
serving signature (raw tf.Examples -> Transform graph -> U-Net), so what is measured is what is
served. Labels are Transform's `mask`, obtained by TFMA calling the exported `transform_features`
signature (TFX cannot transform labels for the Evaluator otherwise).

Metrics: pixel accuracy, mean IoU, IoU and Dice/F1 per class, and the 3x3 pixel confusion matrix
(row-normalised, one metric per cell), overall and sliced by species and by breed.

Gates: absolute floors on mean IoU and pixel accuracy, and no regression of mean IoU beyond
`max_mean_iou_regression` against the latest blessed model (TFMA skips that change threshold on
the first run, when there is no baseline yet).
"""
from __future__ import annotations

import json
from typing import List

import tensorflow_model_analysis as tfma

from model_code.config import Config
from model_code.labels import CLASS_NAMES
from model_code.metrics import (MEAN_IOU, PIXEL_ACCURACY, confusion_name, dice_name,
                                iou_name)
from model_code.preprocessing import TRANSFORMED_MASK_KEY

EVAL_SPLIT = "test"
METRICS_MODULE = "model_code.metrics"
SLICE_FEATURES = ("species", "label")


def _overall_only(threshold: tfma.MetricThreshold) -> list:
    """Gates apply to the whole test split; a breed with three test images would make them
    noise."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=threshold)]


def _metric(class_name: str, name: str, threshold=None, **config) -> tfma.MetricConfig:
    return tfma.MetricConfig(
        class_name=class_name, module=METRICS_MODULE, config=json.dumps(dict(config, name=name)),
        per_slice_thresholds=_overall_only(threshold) if threshold else None)


def _segmentation_metrics(config: Config, mean_iou_threshold) -> List[tfma.MetricConfig]:
    n = config.num_classes
    metrics = [_metric("PixelMeanIoU", MEAN_IOU, mean_iou_threshold, num_classes=n)]
    for k, name in enumerate(CLASS_NAMES[:n]):
        metrics.append(_metric("PixelClassIoU", iou_name(name), num_classes=n, class_index=k))
        metrics.append(_metric("PixelDice", dice_name(name), num_classes=n, class_index=k))
    for t, true_name in enumerate(CLASS_NAMES[:n]):
        for p, predicted_name in enumerate(CLASS_NAMES[:n]):
            metrics.append(_metric("PixelConfusion", confusion_name(true_name, predicted_name),
                                   num_classes=n, true_class=t, predicted_class=p))
    return metrics


def eval_config(config: Config) -> tfma.EvalConfig:
    mean_iou_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_mean_iou}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.max_mean_iou_regression}))
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": config.min_pixel_accuracy}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            preprocessing_function_names=["transform_features"],
            label_key=TRANSFORMED_MASK_KEY)],
        slicing_specs=[tfma.SlicingSpec()] + [
            tfma.SlicingSpec(feature_keys=[feature]) for feature in SLICE_FEATURES],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              config=json.dumps({"name": PIXEL_ACCURACY}),
                              per_slice_thresholds=_overall_only(accuracy_threshold)),
            *_segmentation_metrics(config, mean_iou_threshold),
        ])])
