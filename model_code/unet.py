"""The tutorial's U-Net, built with tf_keras (Keras 2) from a `Config`.

Architecture as in the tutorial: per contracting block two unpadded 3x3 convolutions with ReLU and a
2x2 max-pool; per expanding block a 2x2 stride-2 `Conv2DTranspose` that halves the filters, the
centre-cropped skip connection concatenated in front, two unpadded 3x3 convolutions with ReLU; a
1x1 convolution to one logit per class at the end (no softmax: the loss takes logits).

One deliberate difference: the tutorial passes a single `HeNormal()` instance to every layer.
tf_keras returns identical values from an unseeded initializer instance called repeatedly, so
same-shaped layers would start identical. Each layer gets its own initializer here, seeded from the
run's seed, so a build is reproducible and no two layers share weights.
"""
from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import tf_keras as keras
from tf_keras import layers

from model_code.config import Config


def _initializers(seed: int):
    counter = itertools.count()
    return lambda: keras.initializers.HeNormal(seed=seed * 1000 + next(counter))


def _conv_relu(x, filters: int, init, name: str):
    x = layers.Conv2D(filters, (3, 3), kernel_initializer=init(), name=f"{name}_conv")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _contracting_path(x, config: Config, init) -> Tuple[object, List[object]]:
    skips = []
    for block in range(config.num_unet_blocks):
        filters = config.num_filters_start * 2 ** block
        x = _conv_relu(x, filters, init, f"down{block}_a")
        x = _conv_relu(x, filters, init, f"down{block}_b")
        if block < config.num_unet_blocks - 1:
            skips.append(x)
            x = layers.MaxPool2D((2, 2), strides=(2, 2), name=f"down{block}_pool")(x)
    return x, skips


def _center_crop(x, height: int, width: int, name: str):
    # Keras' CenterCrop, as in the tutorial. A static Cropping2D (no tf.cond in the graph) was
    # measured in bench/first_epoch.py: no gain in the first epoch, ~12 % slower steps.
    return layers.CenterCrop(height=height, width=width, name=name)(x)


def _expansive_path(x, skips, config: Config, init):
    for level in range(config.num_unet_blocks - 1, 0, -1):
        filters = config.num_filters_start * 2 ** level // 2
        x = layers.Conv2DTranspose(filters, (2, 2), strides=(2, 2), kernel_initializer=init(),
                                   name=f"up{level}_upconv")(x)
        skip = _center_crop(skips[level - 1], x.shape[1], x.shape[2], f"up{level}_crop")
        x = layers.Concatenate(axis=-1, name=f"up{level}_concat")([skip, x])
        x = _conv_relu(x, filters, init, f"up{level}_a")
        x = _conv_relu(x, filters, init, f"up{level}_b")
    return x


def build_unet(config: Optional[Config] = None) -> keras.Model:
    """Builds the (uncompiled) U-Net; `build_unet()` is the tutorial's model, 1,862,979 params."""
    config = config or Config()
    init = _initializers(config.seed)
    inputs = keras.Input(shape=(config.input_size, config.input_size, config.input_channels),
                         name="image")
    x, skips = _contracting_path(inputs, config, init)
    x = _expansive_path(x, skips, config, init)
    # float32 logits under any mixed-precision policy (model_code.precision), as Keras advises.
    logits = layers.Conv2D(config.num_classes, (1, 1), kernel_initializer=init(),
                           name="logits", dtype="float32")(x)
    model = keras.Model(inputs, logits, name="U-Net")
    expected = (config.mask_size, config.mask_size, config.num_classes)
    if tuple(model.output_shape[1:]) != expected:  # the derivation in config must match the graph
        raise AssertionError(f"U-Net output {model.output_shape[1:]} != derived {expected}")
    return model
