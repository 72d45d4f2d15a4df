"""The one typed configuration of the pipeline: model, training, data split and evaluation gates.

`Config()` with no arguments is the tutorial's `configuration()` (the `seed` preset). Other presets
are derived from it with `dataclasses.replace`, so a preset only states what it changes. The
configuration crosses component boundaries as a plain dict (`to_dict` / `from_dict`), which is what
TFX's `custom_config` carries.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from model_code.precision import PRECISIONS

CUSTOM_CONFIG_KEY = "pets_unet_config"
# What Transform depends on. Passing it only these keeps its cache valid when training settings
# (epochs, learning rates, ...) change.
PREPROCESSING_FIELDS = ("input_size", "input_channels", "num_unet_blocks")
# Largest image the served model and the predict commands take, checked from the file's header
# before decoding. Today's phone cameras write 12 to 50 megapixels (50 MP: 8160x6120) and 108 MP
# in full-sensor modes (12032x9024); larger ones (200 MP modes, decompression bombs) are refused.
DEFAULT_MAX_IMAGE_PIXELS = 120_000_000
WARM_START = ("auto", "never")
DRIFT_ACTIONS = ("warn", "stop")


def unet_output_size(input_size: int, num_blocks: int) -> int:
    """Spatial output size of the tutorial's valid-convolution U-Net for a square input.

    Each contracting block loses 4 pixels to two unpadded 3x3 convolutions and halves the size with
    a 2x2 max-pool (except the last block); each expanding block doubles the size with a 2x2
    transposed convolution and loses 4 pixels again. Raises ValueError when a pooling step would see
    an odd size, because the skip connections could then not be centre-cropped symmetrically.
    """
    if num_blocks < 1:
        raise ValueError(f"num_unet_blocks must be >= 1, got {num_blocks}")
    size = input_size
    for block in range(num_blocks):
        size -= 4
        if size <= 0:
            raise ValueError(f"input size {input_size} is too small for {num_blocks} U-Net blocks")
        if block < num_blocks - 1:
            if size % 2:
                raise ValueError(
                    f"input size {input_size} gives an odd feature map ({size}) before max-pool "
                    f"{block + 1} of {num_blocks - 1}; choose an input size for which every "
                    "pooled size is even (e.g. 100 for 3 blocks)")
            size //= 2
    for _ in range(num_blocks - 1):
        size = size * 2 - 4
    if size <= 0:
        raise ValueError(f"input size {input_size} is too small for {num_blocks} U-Net blocks")
    return size


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The Tuner's search (runners' --tune): space and budget. Not in the tutorial.

    The learning-rate schedule searched is geometric: its i-th value is
    `learning_rate * lr_decay**i`, with as many values as `lr_schedule_values` has.
    """

    max_trials: int = 8
    epochs_per_trial: int = 5
    learning_rate: Tuple[float, float] = (1e-4, 3e-3)  # log-uniform between these
    lr_decay: Tuple[float, float] = (0.05, 0.5)  # log-uniform between these
    num_filters_start: Tuple[int, ...] = (16, 32, 64)  # one of these

    def __post_init__(self):
        if self.max_trials < 1 or self.epochs_per_trial < 1:
            raise ValueError("tuning needs at least 1 trial of at least 1 epoch, got "
                             f"{self.max_trials} trials of {self.epochs_per_trial} epochs")
        for name in ("learning_rate", "lr_decay"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"tuning.{name} must be (low, high) with 0 < low <= high, "
                                 f"got ({low}, {high})")
        if not self.num_filters_start or min(self.num_filters_start) < 1:
            raise ValueError("tuning.num_filters_start needs positive filter counts, got "
                             f"{self.num_filters_start}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs to know. Defaults are the tutorial's `configuration()`."""

    # Model (tutorial: num_filters_start, num_unet_blocks, num_filters_end, input_*).
    input_size: int = 100
    input_channels: int = 3
    num_filters_start: int = 64
    num_unet_blocks: int = 3
    num_classes: int = 3

    # Training (tutorial: batch_size, buffer_size, num_epochs, lr_schedule_*, class_weights).
    batch_size: int = 50
    shuffle_buffer: int = 50
    num_epochs: int = 25
    lr_schedule_fractions: Tuple[float, ...] = (0.2, 0.5, 0.8)
    lr_schedule_values: Tuple[float, ...] = (3e-4, 1e-4, 1e-5, 1e-6)
    class_weights: Tuple[float, ...] = (1.0, 1.0, 2.0)
    validation_sub_splits: int = 5
    seed: int = 36
    # "auto", "float32", "mixed_bfloat16" or "mixed_float16"; see model_code.precision. Not in
    # the tutorial (float32 throughout); "auto" trains about twice as fast on CPUs with native
    # bfloat16 and gives the same results.
    precision: str = "auto"

    # Data: the tutorial re-splits train+test 80/10/10 (data_*_prc); here as hash buckets.
    split_buckets: Tuple[Tuple[str, int], ...] = (("train", 8), ("eval", 1), ("test", 1))
    synthetic_examples: int = 1000
    # Share of examples ExampleQuarantine may set aside before the run stops.
    max_bad_fraction: float = 0.01

    # Evaluation gates (TFMA thresholds on the test split).
    min_mean_iou: float = 0.5
    min_pixel_accuracy: float = 0.7
    max_mean_iou_regression: float = 0.01

    # Serving: the largest image accepted (pixels), see DEFAULT_MAX_IMAGE_PIXELS. Not in the
    # tutorial, which reads only its own dataset.
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    # Continuous training, for a data folder of span-N/ folders (README, "Continuous training").
    # Not in the tutorial. Train on the newest `window_spans` spans; warm-start ("auto") from
    # the latest blessed model when its U-Net has this one's shape, then train
    # `finetune_epochs` epochs at the learning rates times `finetune_lr_scale`.
    window_spans: int = 3
    warm_start: str = "auto"
    finetune_epochs: int = 8
    finetune_lr_scale: float = 0.3
    # Drift of a new span from the one before: Jensen-Shannon divergence of a feature's
    # histogram (TFDV's drift comparator; its L-infinity one needs categorical statistics, which
    # StatisticsGen makes for integer features only given a schema) above which it counts as
    # drift. `drift_action` "warn" reports it, "stop" ends the run before training (exit 2).
    drift_thresholds: Tuple[Tuple[str, float], ...] = (("species", 0.1), ("label", 0.25))
    drift_action: str = "warn"

    # Hyperparameter search, used only when a runner is given --tune.
    tuning: Tuning = Tuning()

    def __post_init__(self):
        if len(self.lr_schedule_values) != len(self.lr_schedule_fractions) + 1:
            raise ValueError("lr_schedule_values needs exactly one more entry than "
                             "lr_schedule_fractions")
        if len(self.class_weights) != self.num_classes:
            raise ValueError(f"class_weights has {len(self.class_weights)} entries for "
                             f"{self.num_classes} classes")
        unet_output_size(self.input_size, self.num_unet_blocks)  # validates the geometry
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be positive, got {self.max_image_pixels}")
        if self.window_spans < 1 or self.finetune_epochs < 1:
            raise ValueError(f"window_spans and finetune_epochs must be at least 1, got "
                             f"{self.window_spans} and {self.finetune_epochs}")
        if self.warm_start not in WARM_START or self.drift_action not in DRIFT_ACTIONS:
            raise ValueError(f"warm_start is one of {WARM_START}, drift_action one of "
                             f"{DRIFT_ACTIONS}; got {self.warm_start!r}, {self.drift_action!r}")
        if not 0 < self.finetune_lr_scale <= 1:
            raise ValueError(f"finetune_lr_scale must be in (0, 1], got {self.finetune_lr_scale}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")

    @property
    def mask_size(self) -> int:
        """Side of the predicted mask: derived from input size and depth, never configured."""
        return unet_output_size(self.input_size, self.num_unet_blocks)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def as_custom_config(self, fields: Optional[Tuple[str, ...]] = None) -> Dict[str, Any]:
        """The form components receive it in: nested, so that other keys (e.g. Vertex AI
        training arguments) can share TFX's `custom_config`. With `fields`, only those are
        passed (the rest take their defaults on the other side)."""
        values = self.to_dict()
        if fields is not None:
            values = {name: values[name] for name in fields}
        return {CUSTOM_CONFIG_KEY: values}

    def without_tuning(self) -> Tuple[str, ...]:
        """Every field but `tuning`: what the Trainer receives, so that a changed search budget
        does not invalidate its cache (the search's outcome reaches it as hyperparameters)."""
        return tuple(f.name for f in dataclasses.fields(self) if f.name != "tuning")

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Dict[str, Any]]) -> "Config":
        if not custom_config or CUSTOM_CONFIG_KEY not in custom_config:
            raise ValueError(f"custom_config has no {CUSTOM_CONFIG_KEY!r} entry; build it with "
                             "Config.as_custom_config()")
        return cls.from_dict(custom_config[CUSTOM_CONFIG_KEY])

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        fixed = _tuples(values)
        if isinstance(fixed.get("tuning"), dict):
            tuning = fixed["tuning"]
            known = {f.name for f in dataclasses.fields(Tuning)}
            if set(tuning) - known:
                raise ValueError(f"unknown tuning keys: {sorted(set(tuning) - known)}")
            fixed["tuning"] = Tuning(**_tuples(tuning))
        return cls(**fixed)


def _tuples(values: Dict[str, Any]) -> Dict[str, Any]:
    """JSON round trips turn tuples into lists; this turns them back."""
    return {key: tuple(tuple(v) if isinstance(v, list) else v for v in value)
            if isinstance(value, list) else value for key, value in values.items()}


SEED = Config()

# Sized so that `python local_runner.py` finishes in about ten minutes on 2 CPU cores and still
# learns the synthetic pets. The seed's learning rates are tuned for ~3,000 steps of batch 50;
# demo takes far fewer steps, so it starts higher.
DEMO = dataclasses.replace(
    SEED,
    num_filters_start=16,
    batch_size=16,
    shuffle_buffer=256,
    num_epochs=12,
    lr_schedule_values=(2e-3, 1e-3, 3e-4, 1e-4),
    synthetic_examples=1000,
    finetune_epochs=4,
    finetune_lr_scale=1.0,
    min_mean_iou=0.6,
    min_pixel_accuracy=0.8,
    tuning=Tuning(max_trials=6, epochs_per_trial=4, learning_rate=(3e-4, 1e-2),
                  num_filters_start=(8, 16, 32)),
)

# Tiny, for tests: every component runs, nothing is expected to be learned.
SMOKE = dataclasses.replace(
    SEED,
    num_filters_start=4,
    batch_size=4,
    shuffle_buffer=16,
    num_epochs=1,
    finetune_epochs=1,
    validation_sub_splits=1,
    synthetic_examples=40,
    min_mean_iou=0.0,
    min_pixel_accuracy=0.0,
    max_mean_iou_regression=1.0,
    tuning=Tuning(max_trials=2, epochs_per_trial=1, num_filters_start=(4, 8)),
)

PRESETS: Dict[str, Config] = {"seed": SEED, "demo": DEMO, "smoke": SMOKE}


def get_preset(name: str, epochs: Optional[int] = None, precision: Optional[str] = None,
               trials: Optional[int] = None, epochs_per_trial: Optional[int] = None,
               **fields: Any) -> Config:
    """A preset by name, optionally with epochs, precision, the search budget and other fields
    (`fields`, e.g. window_spans=2; None leaves one as it is) overridden (runners' flags)."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        config = dataclasses.replace(config, num_epochs=epochs)
    if precision is not None:
        config = dataclasses.replace(config, precision=precision)
    budget = {name: value for name, value in (("max_trials", trials),
                                              ("epochs_per_trial", epochs_per_trial))
              if value is not None}
    if budget:
        config = dataclasses.replace(config, tuning=dataclasses.replace(config.tuning, **budget))
    fields = {key: value for key, value in fields.items() if value is not None}
    return dataclasses.replace(config, **fields) if fields else config
