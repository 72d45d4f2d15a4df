"""The hyperparameters the Tuner searches: their KerasTuner space and how they change a Config."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from model_code.config import Config, Tuning

LEARNING_RATE = "learning_rate"  # first value of the learning-rate schedule
LR_DECAY = "lr_decay"  # factor from one value of the schedule to the next
NUM_FILTERS_START = "num_filters_start"
SEARCHED = (LEARNING_RATE, LR_DECAY, NUM_FILTERS_START)
TRIAL_LOGS = "tensorboard"  # the trials' TensorBoard logs, in the Tuner's working folder


def define(hp, tuning: Tuning) -> None:
    """Declares the search space of `tuning` on a keras_tuner.HyperParameters."""
    for name in (LEARNING_RATE, LR_DECAY):
        low, high = getattr(tuning, name)
        if low == high:
            hp.Fixed(name, low)
        else:
            hp.Float(name, low, high, sampling="log")
    hp.Choice(NUM_FILTERS_START, list(tuning.num_filters_start))


def configured(config: Config) -> Dict[str, Any]:
    """The configuration's own point in the search space: its first learning rate, the decay
    that goes from its first to its last value in as many steps, its filters; each moved to the
    nearest value the space allows."""
    tuning, schedule = config.tuning, config.lr_schedule_values
    decay = (schedule[-1] / schedule[0]) ** (1 / (len(schedule) - 1)) if len(schedule) > 1 else 1
    return {
        LEARNING_RATE: min(max(schedule[0], tuning.learning_rate[0]), tuning.learning_rate[1]),
        LR_DECAY: min(max(decay, tuning.lr_decay[0]), tuning.lr_decay[1]),
        NUM_FILTERS_START: min(tuning.num_filters_start,
                               key=lambda n: abs(n - config.num_filters_start)),
    }


def values_of(hyperparameters: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The values in TFX's `fn_args.hyperparameters` (a KerasTuner HyperParameters config,
    `{"space": [...], "values": {...}}`), or {} when the Trainer got none."""
    if not hyperparameters:
        return {}
    values = hyperparameters.get("values", hyperparameters)
    return {name: values[name] for name in SEARCHED if name in values}


def apply(config: Config, values: Dict[str, Any]) -> Config:
    """`config` with searched values in place: the schedule becomes learning_rate * lr_decay**i
    (as many values as before), num_filters_start is replaced; other keys are ignored."""
    changes: Dict[str, Any] = {}
    if NUM_FILTERS_START in values:
        changes["num_filters_start"] = int(values[NUM_FILTERS_START])
    if LEARNING_RATE in values or LR_DECAY in values:
        old = config.lr_schedule_values
        first = float(values.get(LEARNING_RATE, old[0]))
        if LR_DECAY in values:
            decay = float(values[LR_DECAY])
            changes["lr_schedule_values"] = tuple(first * decay ** i for i in range(len(old)))
        else:  # the configured shape, moved to start at `first`
            changes["lr_schedule_values"] = tuple(value * first / old[0] for value in old)
    return dataclasses.replace(config, **changes)
