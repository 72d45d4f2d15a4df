"""End to end: the real LocalDagRunner pipeline on a small TFDS-written dataset, run twice.

Like TFX's penguin example test: the first run executes every component and pushes a model; the
second run with unchanged inputs is served from cache up to the Trainer (the Resolver always runs,
and the Evaluator and Pusher run again because the first run's model is now the baseline).
"""
import glob
import os
import re

import numpy as np
import tensorflow as tf

import local_runner

UPSTREAM = ["ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "SchemaGen",
            "ExampleValidator", "Transform", "Trainer"]
ALL = UPSTREAM + ["latest_blessed_model_resolver", "Evaluator", "Pusher", "EvaluationReport"]


def test_first_run_executes_every_component_and_pushes(smoke_runs):
    paths, first, first_versions, _ = smoke_runs
    assert first.executions == {name: "COMPLETE" for name in ALL}
    assert first.blessed is True and first.pushed is True
    assert len(first_versions) == 1
    assert first.pushed_destination == os.path.join(paths["serving_dir"], first_versions[0])
    assert {"mean_iou", "pixel_accuracy", "example_count"} <= set(first.metrics)
    assert 0.0 <= first.metrics["mean_iou"] <= 1.0


def test_second_run_is_served_from_cache(smoke_runs):
    _, first, _, second = smoke_runs
    assert second.run_id != first.run_id
    assert {name: second.executions[name] for name in UPSTREAM} == \
        {name: "CACHED" for name in UPSTREAM}
    assert second.artifact_uris["Model"] == first.artifact_uris["Model"]


def _serialized_test_examples(tfds_pets_dir, count):
    files = glob.glob(os.path.join(tfds_pets_dir, "oxford_iiit_pet", "4.0.0", "*test.tfrecord*"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files).take(count)]


def test_pushed_model_serves_real_serialized_examples(smoke_runs, tfds_pets_dir):
    _, first, _, _ = smoke_runs
    model = tf.saved_model.load(first.pushed_destination)
    examples = _serialized_test_examples(tfds_pets_dir, 3)
    scores = model.signatures["serving_default"](examples=tf.constant(examples))["scores"]
    assert scores.shape == (3, 60, 60, 3)
    np.testing.assert_allclose(tf.reduce_sum(scores, -1).numpy(), 1.0, atol=1e-4)

    # An example carrying nothing but the image is enough to serve.
    image_only = tf.train.Example()
    image_only.ParseFromString(examples[0])
    for key in list(image_only.features.feature):
        if key != "image":
            del image_only.features.feature[key]
    alone = model.signatures["serving_default"](
        examples=tf.constant([image_only.SerializeToString()]))["scores"]
    np.testing.assert_allclose(alone.numpy()[0], scores.numpy()[0], atol=1e-5)

    labels = model.signatures["transform_features"](examples=tf.constant(examples))["mask"]
    assert labels.shape == (3, 60, 60)
    assert set(np.unique(labels.numpy())) <= {0, 1, 2}


def test_training_logs_include_the_learning_rate(smoke_runs):
    _, first, _, _ = smoke_runs
    tags = set()
    for path in glob.glob(os.path.join(first.artifact_uris["ModelRun"], "**", "events.*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_learning_rate", "epoch_loss"} <= tags


def test_a_data_dir_without_tfrecords_fails_before_any_work(tmp_path, capsys):
    assert local_runner.main(["--preset", "smoke", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no TFRecord files" in err


def test_trainer_used_the_precision_auto_chose_and_recorded_it(smoke_runs):
    from model_code import precision

    _, first, _, _ = smoke_runs
    record = precision.read_record(first.pushed_destination)  # travels with the pushed model
    assert record["precision"] == precision.choose("auto")[0]
    assert record["precision_reason"].startswith("auto: ")
    page = open(first.report_path, encoding="utf-8").read()
    assert f'<span id="precision">{record["precision"]}</span>' in page


def test_tensorboard_shows_example_masks_and_the_confusion_matrix(smoke_runs):
    from model_code.training_display import CONFUSION_TAG, EXAMPLES_TAG

    _, first, _, _ = smoke_runs
    images = {}
    for path in glob.glob(os.path.join(first.artifact_uris["ModelRun"], "**", "events.*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    images.setdefault(value.tag, []).append(tf.make_ndarray(value.tensor))
    assert set(images) == {EXAMPLES_TAG, CONFUSION_TAG}
    # An image summary holds width, height, then one encoded PNG per picture.
    examples = images[EXAMPLES_TAG][-1]
    assert 1 <= len(examples) - 2 <= 4 and examples[2].startswith(b"\x89PNG")


def test_the_console_names_each_component_and_shows_no_library_noise(smoke_runs):
    paths, _, _, _ = smoke_runs
    console = paths["first_console"]
    lines = console.splitlines()
    assert len(lines) <= 60, console
    for name in ALL:
        assert re.search(rf"^  {name} +ran +[0-9.]+ s$", console, re.M), name
    assert re.search(r"^  epoch 1/1: .*val_mean_iou", console, re.M)
    for noise in ("WARNING", "cuda", "TensorRT", "Instructions for updating", "TFT_OPTIONAL",
                  "google_auth", "property_predicate", "payload_format", "Traceback"):
        assert noise not in console, noise
