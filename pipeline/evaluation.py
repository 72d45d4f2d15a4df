"""The TFMA configuration that decides whether a trained U-Net is blessed.

Metrics are computed by TFMA inside the Evaluator on the held-out `test` split, through the model's
serving signature (raw tf.Examples -> Transform graph -> U-Net), so what is measured is what is
served. Labels are Transform's `mask`, obtained by TFMA calling the exported `transform_features`
signature (TFX cannot transform labels for the Evaluator otherwise).

Gates: absolute floors on mean IoU and pixel accuracy, and no regression of mean IoU beyond
`max_mean_iou_regression` against the latest blessed model (TFMA skips that change threshold on
the first run, when there is no baseline yet).
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from model_code.config import Config
from model_code.preprocessing import TRANSFORMED_MASK_KEY

EVAL_SPLIT = "test"
MEAN_IOU = "mean_iou"
PIXEL_ACCURACY = "pixel_accuracy"


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
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["species"])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(
                class_name="SparseCategoricalAccuracy",
                config=json.dumps({"name": PIXEL_ACCURACY}),
                threshold=accuracy_threshold),
            tfma.MetricConfig(
                class_name="PixelMeanIoU",
                module="model_code.metrics",
                config=json.dumps({"name": MEAN_IOU, "num_classes": config.num_classes}),
                threshold=mean_iou_threshold),
        ])])
