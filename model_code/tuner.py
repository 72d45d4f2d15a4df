"""Tuner's `tuner_fn`: a KerasTuner random search over the learning-rate schedule and U-Net width.

Every trial trains the way the Trainer does (model_code.trainer.fit: same data, augmentation,
loss, precision and seed), for `tuning.epochs_per_trial` epochs, and scores the best validation
mean IoU it reached on the whole eval split (the Trainer, like the tutorial, validates on a
fifth of it: too few examples to rank trials by). The first trial is the configuration's own
values (hyperparameters.configured), so the search is a comparison with what would have been
trained without it; the others are KerasTuner's random draws. The space is
model_code.hyperparameters; the budget is the configuration's `tuning` section. Trials are written
for TensorBoard under `<working_dir>/tensorboard`, one run per trial with its hyperparameters for
the HParams dashboard. Trials run on one device, in the
Tuner's own process.
"""
from __future__ import annotations

import dataclasses
import os
import time

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tensorboard.plugins.hparams import api as hparams_api
from tfx import v1 as tfx

from model_code import hyperparameters, precision, trainer
from model_code.config import Config

OBJECTIVE = "val_mean_iou"  # Keras' name for the validation PixelMeanIoU (model_code.trainer)


class ConfiguredFirst(keras_tuner.oracles.RandomSearchOracle):
    """KerasTuner's random search, with the configuration's own values as its first trial."""

    def __init__(self, first_values, **kwargs):
        super().__init__(**kwargs)
        self.first_values = first_values

    def populate_space(self, trial_id):
        if not self.trials:
            return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING,
                    "values": dict(self.first_values)}
        return super().populate_space(trial_id)


class UNetSearch(keras_tuner.Tuner):
    """A search whose trials are trainer.fit runs.

    run_trial is overridden, KerasTuner's documented way to tune one's own training code:
    KerasTuner 1.4 builds and fits Keras 3 models itself, and this project's models are tf_keras.
    """

    def __init__(self, config: Config, data: trainer.TrainingData, log_dir: str, **kwargs):
        space = keras_tuner.HyperParameters()
        hyperparameters.define(space, config.tuning)
        oracle = ConfiguredFirst(
            hyperparameters.configured(config),
            objective=keras_tuner.Objective(OBJECTIVE, "max"),
            max_trials=config.tuning.max_trials, seed=config.seed, hyperparameters=space)
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.config, self.data, self.log_dir = config, data, log_dir
        self.policy, _ = precision.choose(config.precision)
        with tf.summary.create_file_writer(log_dir).as_default():
            hparams_api.hparams_config(
                hparams=[_hparam(name, config) for name in hyperparameters.SEARCHED],
                metrics=[hparams_api.Metric("epoch_mean_iou", group="validation",
                                            display_name="validation mean IoU")])

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        config = dataclasses.replace(hyperparameters.apply(self.config, values),
                                     num_epochs=self.config.tuning.epochs_per_trial)
        keras.backend.clear_session()
        tf.random.set_seed(config.seed)
        log_dir = os.path.join(self.log_dir, f"trial_{trial.trial_id}")
        with tf.summary.create_file_writer(log_dir).as_default():
            hparams_api.hparams(values, trial_id=trial.trial_id)
        start = time.perf_counter()
        _, history = trainer.fit(config, self.data, log_dir, self.policy, show=False)
        score = max(history.history[OBJECTIVE])
        print(f"Trial {int(trial.trial_id) + 1}/{self.config.tuning.max_trials}: "
              f"{describe(values)}: validation mean IoU {score:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        return {OBJECTIVE: score}


def _hparam(name: str, config: Config):
    if name == hyperparameters.NUM_FILTERS_START:
        return hparams_api.HParam(name, hparams_api.Discrete(
            [int(n) for n in config.tuning.num_filters_start]))
    low, high = getattr(config.tuning, name)
    return hparams_api.HParam(name, hparams_api.RealInterval(float(low), float(high)))


def describe(values) -> str:
    """`learning_rate=0.0012, lr_decay=0.21, num_filters_start=32`."""
    return ", ".join(f"{name}={values[name]:.2g}" if isinstance(values[name], float)
                     else f"{name}={values[name]}" for name in hyperparameters.SEARCHED
                     if name in values)


def tuner_fn(fn_args) -> tfx.components.TunerFnResult:
    """TFX Tuner entry point (`model_code.tuner.tuner_fn`)."""
    config = dataclasses.replace(Config.from_custom_config(fn_args.custom_config),
                                 validation_sub_splits=1)
    data = trainer.load_data(fn_args, config,
                             tft.TFTransformOutput(fn_args.transform_graph_path))
    epochs = config.tuning.epochs_per_trial
    print(f"Tuning: {config.tuning.max_trials} trials. {data.describe(config, epochs)}",
          flush=True)
    search = UNetSearch(config, data, os.path.join(fn_args.working_dir, hyperparameters.TRIAL_LOGS),
                        directory=fn_args.working_dir, project_name="trials", overwrite=True)
    return tfx.components.TunerFnResult(tuner=search, fit_kwargs={"verbose": 0})
