"""Trainer's `run_fn`: trains the U-Net on Transform's output and exports a servable SavedModel.

Training follows the tutorial's `main()`: Adam with a piecewise-constant learning rate whose
boundaries sit at 20/50/80 % of the run, sparse categorical cross-entropy from logits, per-pixel
sample weights from the class weights, random horizontal and vertical flips, TensorBoard logs
(here also example masks and the confusion matrix as pictures: model_code.training_display).

Differences from the tutorial, on purpose:
  * The schedule's boundaries come from the steps this run really takes (epochs x steps per
    epoch of the data at hand), so short runs also pass through every learning rate.
  * Flips are drawn once per example and applied to image and mask together, instead of two
    random ops that share a seed (which does not guarantee the same draw) on whole batches.

The exported model carries the Transform graph and takes raw inputs; its signatures are described
in model_code.export. Training may run under Keras mixed precision (model_code.precision); the
exported model is always float32, with the trained weights, so serving and TFMA see no
difference. The precision used is recorded in the model (model_code.precision.RECORD). On
several workers or GPUs training is synchronous data-parallel (model_code.distribution).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from typing import List, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from model_code import (autograph_rules, distribution, export, hyperparameters, precision,
                        preprocessing, warm_start)
from model_code.config import Config
from model_code.metrics import PixelMeanIoU
from model_code.training_display import EpochLine, ImageSummaries
from model_code.unet import build_unet

def build_lr_schedule(config: Config, total_steps: int):
    """PiecewiseConstantDecay with boundaries at `lr_schedule_fractions` of `total_steps`."""
    boundaries = [max(1, int(fraction * total_steps)) for fraction in config.lr_schedule_fractions]
    for i in range(1, len(boundaries)):  # very short runs: keep boundaries strictly increasing
        boundaries[i] = max(boundaries[i], boundaries[i - 1] + 1)
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, list(config.lr_schedule_values))


def random_flip_pair(image: tf.Tensor, mask: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Flips one example's image [H, W, C] and mask [h, w] with the same two coin tosses."""
    coins = tf.random.uniform([2]) < 0.5
    image = tf.where(coins[0], tf.reverse(image, [1]), image)
    mask = tf.where(coins[0], tf.reverse(mask, [1]), mask)
    image = tf.where(coins[1], tf.reverse(image, [0]), image)
    mask = tf.where(coins[1], tf.reverse(mask, [0]), mask)
    return image, mask


def pixel_weights(mask: tf.Tensor, class_weights) -> tf.Tensor:
    """Per-pixel weights from class weights normalised to sum to 1, as in the tutorial."""
    weights = tf.constant(class_weights, tf.float32)
    return tf.gather(weights / tf.reduce_sum(weights), mask)


def _files(file_patterns) -> List[str]:
    if isinstance(file_patterns, str):
        return tf.io.gfile.glob(file_patterns)
    return [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]


def _parsed_dataset(file_patterns: List[str], tf_transform_output) -> tf.data.Dataset:
    files = _files(file_patterns)
    if not files:
        raise ValueError(f"no transformed examples found at {file_patterns}")
    spec = tf_transform_output.transformed_feature_spec()
    wanted = {key: spec[key] for key in (preprocessing.TRANSFORMED_IMAGE_KEY,
                                         preprocessing.TRANSFORMED_MASK_KEY)}
    return tf.data.TFRecordDataset(files, compression_type="GZIP",
                                   num_parallel_reads=tf.data.AUTOTUNE).map(
        lambda record: tf.io.parse_single_example(record, wanted),
        num_parallel_calls=tf.data.AUTOTUNE)


def count_examples(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def make_dataset(parsed: tf.data.Dataset, config: Config, training: bool) -> tf.data.Dataset:
    """(image, mask, pixel weights) batches; shuffled, augmented and repeated when training."""
    image_key, mask_key = preprocessing.TRANSFORMED_IMAGE_KEY, preprocessing.TRANSFORMED_MASK_KEY
    ds = parsed.map(lambda f: (preprocessing.decode_image_pixels(f[image_key], config.input_size),
                               f[mask_key]), num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
        ds = ds.repeat().map(random_flip_pair, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.repeat()
    ds = ds.map(lambda image, mask: (image, mask, pixel_weights(mask, config.class_weights)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(config.batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def compile_model(config: Config, total_steps: int) -> keras.Model:
    model = build_unet(config)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=build_lr_schedule(config, total_steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 PixelMeanIoU(num_classes=config.num_classes, name="mean_iou")])
    return model


@dataclasses.dataclass
class TrainingData:
    """Transform's train and eval examples, parsed, with the step counts derived from them."""

    train: tf.data.Dataset
    eval: tf.data.Dataset
    num_train: int
    num_eval: int
    steps_per_epoch: int
    validation_steps: int
    train_files: int

    def describe(self, config: Config, epochs: int) -> str:
        return (f"Training on {self.num_train} examples: {epochs} epoch{'s' * (epochs != 1)} x "
                f"{self.steps_per_epoch} steps of {config.batch_size}; validating on "
                f"{self.validation_steps * config.batch_size} of {self.num_eval} eval examples")


def load_data(fn_args, config: Config, tf_transform_output) -> TrainingData:
    """Reads the splits TFX names in `fn_args` (Trainer's and Tuner's alike)."""
    train = _parsed_dataset(fn_args.train_files, tf_transform_output)
    evaluation = _parsed_dataset(fn_args.eval_files, tf_transform_output)
    num_train, num_eval = count_examples(train), count_examples(evaluation)
    if num_train < config.batch_size:
        raise ValueError(f"the train split has {num_train} examples, fewer than one batch of "
                         f"{config.batch_size}; use a smaller --preset or more data")
    if num_eval == 0:
        raise ValueError("the eval split is empty; the data needs more examples")
    return TrainingData(
        train=train, eval=evaluation, num_train=num_train, num_eval=num_eval,
        steps_per_epoch=num_train // config.batch_size,
        validation_steps=max(1, num_eval // config.batch_size // config.validation_sub_splits),
        train_files=len(_files(fn_args.train_files)))


def fit(config: Config, data: TrainingData, log_dir: str, policy: str,
        strategy: Optional[tf.distribute.Strategy] = None, show: bool = True,
        initial_weights: Optional[List] = None):
    """Builds, compiles and trains the U-Net under `policy`; returns (model, keras History).

    `show=False` (the Tuner's trials) writes no pictures to TensorBoard and prints nothing.
    `initial_weights` (a warm start) replace the fresh model's before training.
    """
    autograph_rules.skip_tf_keras()
    strategy = strategy or tf.distribute.get_strategy()
    total_steps = data.steps_per_epoch * config.num_epochs
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = distribution.shard_policy(
        data.train_files)
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            model = compile_model(config, total_steps)
            if initial_weights is not None:
                model.set_weights(initial_weights)
        # The tutorial validates on a fixed 1/validation_sub_splits of the eval split.
        validation = make_dataset(data.eval.take(data.validation_steps * config.batch_size),
                                  config, training=False).with_options(options)
        callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")]
        if show:
            callbacks.append(ImageSummaries(log_dir, validation, data.validation_steps,
                                            config.num_classes))
        interactive = show and sys.stdout.isatty()  # a progress bar; else a line per epoch
        history = model.fit(
            make_dataset(data.train, config, training=True).with_options(options),
            epochs=config.num_epochs,
            steps_per_epoch=data.steps_per_epoch,
            validation_data=validation,
            validation_steps=data.validation_steps,
            callbacks=callbacks + ([EpochLine()] if show and not interactive else []),
            verbose=1 if interactive else 0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, history


def run_fn(fn_args) -> keras.Model:
    """TFX Trainer entry point (`model_code.trainer.run_fn`); returns the exported model.

    Runs under the tf.distribute strategy the environment calls for (model_code.distribution).
    With a Tuner upstream, its best hyperparameters replace the configured ones
    (model_code.hyperparameters) and are recorded in the model with the configuration used.
    """
    # First: multi-worker collectives must be configured before TensorFlow runs any op.
    strategy = distribution.choose_strategy()
    tuned = hyperparameters.values_of(fn_args.hyperparameters)
    config = hyperparameters.apply(Config.from_custom_config(fn_args.custom_config), tuned)
    tf.random.set_seed(config.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    data = load_data(fn_args, config, tf_transform_output)
    start = warm_start.choose(getattr(fn_args, "base_model", None), config,
                              lambda: build_unet(config))
    if start.source:  # a blessed model was offered (spans): say whether it was taken, and why
        print(start.line(), flush=True)
    if start.weights is not None:
        config = warm_start.finetune(config)
    print(data.describe(config, config.num_epochs), flush=True)
    if tuned:
        print("Hyperparameters from the Tuner: " + ", ".join(
            f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in tuned.items()), flush=True)

    chief = distribution.is_chief(strategy)
    policy, why = precision.choose(config.precision)
    print(f"Precision: {policy} ({why}); {distribution.describe(strategy)}", flush=True)
    # Only the chief writes into the Trainer's folders (see model_code.distribution).
    log_dir = fn_args.model_run_dir if chief else tempfile.mkdtemp(prefix="worker_logs_")
    model, _ = fit(config, data, log_dir, policy, strategy, initial_weights=start.weights)
    # Exported: a plain float32 model with the trained weights (variables are float32 under
    # mixed precision too), outside any strategy, so saving it involves no other worker.
    exported = build_unet(config)
    exported.set_weights(model.get_weights())
    if chief:
        exported.save(fn_args.serving_model_dir, save_format="tf",
                      signatures=export.make_signatures(exported, tf_transform_output,
                                                           config.max_image_pixels))
        precision.write_record(fn_args.serving_model_dir, policy, why,
                               hyperparameters=tuned, config=config.to_dict(),
                               warm_start=start.record())
    else:
        tf.io.gfile.rmtree(log_dir)
        print("Waiting for the chief's export ...", flush=True)
        distribution.wait_for_file(os.path.join(fn_args.serving_model_dir, precision.RECORD))
    return exported
