"""Warm start: a run on new spans begins from the latest blessed model's weights, when they fit.

The Trainer's `base_model` (fn_args.base_model) is the model the latest-blessed Resolver found, or
None. Its weights are used only when its U-Net has this run's shape (a model tuned to another
width, say, cannot give its weights); otherwise training starts cold and says why. A warm start
trains the preset's fine-tuning schedule: `finetune_epochs` epochs at the learning rates times
`finetune_lr_scale`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

from model_code.config import Config

# What decides the shapes of the U-Net's weights.
ARCHITECTURE = ("input_size", "input_channels", "num_filters_start", "num_unet_blocks",
                "num_classes")


@dataclasses.dataclass
class Start:
    """Where training starts: `weights` of `source`, or None (cold) for `reason`."""

    weights: Optional[List] = None
    source: Optional[str] = None
    reason: str = ""

    def line(self) -> str:
        if self.weights is not None:
            return f"Warm start from the latest blessed model {self.source}"
        return f"Cold start: {self.reason}"

    def record(self) -> dict:
        return {"warm": self.weights is not None, "from": self.source, "reason": self.reason}


def finetune(config: Config) -> Config:
    """The configuration of a warm-started run: the preset's fine-tuning schedule."""
    return dataclasses.replace(
        config, num_epochs=config.finetune_epochs,
        lr_schedule_values=tuple(value * config.finetune_lr_scale
                                 for value in config.lr_schedule_values))


def _differences(config: Config, base: dict) -> List[str]:
    return [f"{name} {base[name]} there, {getattr(config, name)} here" for name in ARCHITECTURE
            if name in base and base[name] != getattr(config, name)]


def choose(base_model: Optional[str], config: Config, build) -> Start:
    """The start of this run: the base model's weights if this run's U-Net (`build()` makes
    it) can take them, else a cold start with the reason."""
    import tensorflow as tf

    from model_code import precision

    if config.warm_start == "never":
        return Start(reason="warm start is off (--warm-start never)")
    if not base_model:
        return Start(reason="no blessed model to start from (none yet, or an orchestrator "
                            "without the latest-blessed-model Resolver)")
    record = precision.read_record(base_model) or {}
    differences = _differences(config, record.get("config") or {})
    if differences:
        return Start(source=base_model,
                     reason="the blessed model's U-Net differs (" + "; ".join(differences) + ")")
    model = build()
    try:
        # The SavedModel's variables are a TF checkpoint of the U-Net: its weights load into a
        # fresh one in milliseconds, where keras.models.load_model rebuilds every signature (~1.5 s).
        model.load_weights(os.path.join(base_model, "variables", "variables")
                           ).assert_existing_objects_matched()
    except (AssertionError, OSError, ValueError, tf.errors.OpError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return Start(source=base_model,
                     reason=f"the blessed model's weights do not fit ({first_line[:200]})")
    return Start(weights=model.get_weights(), source=base_model)
