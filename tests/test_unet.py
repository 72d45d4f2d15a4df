"""The U-Net matches the tutorial's architecture and derives its output size."""
import dataclasses

import numpy as np
import pytest

from model_code.config import SEED, Config, unet_output_size
from model_code.unet import build_unet


def test_default_build_is_the_tutorial_model():
    model = build_unet()
    assert model.count_params() == 1_862_979
    assert model.input_shape == (None, 100, 100, 3)
    assert model.output_shape == (None, 60, 60, 3)


@pytest.mark.parametrize("input_size, blocks, expected", [
    (100, 3, 60),   # the tutorial
    (100, 2, 84),
    (188, 4, 100),
    (572, 5, 388),  # Ronneberger et al. (2015), figure 1
])
def test_output_size_is_derived_from_input_and_depth(input_size, blocks, expected):
    assert unet_output_size(input_size, blocks) == expected
    config = Config(input_size=input_size, num_unet_blocks=blocks, num_filters_start=2)
    assert config.mask_size == expected
    assert build_unet(config).output_shape == (None, expected, expected, 3)


def test_sizes_that_cannot_be_pooled_evenly_are_rejected():
    with pytest.raises(ValueError, match="odd feature map"):
        Config(input_size=101)


def test_same_shaped_layers_start_with_different_weights():
    model = build_unet()
    # down0_b and up1_b are both 3x3 convolutions from 64 to 64 channels.
    a = model.get_layer("down0_b_conv").get_weights()[0]
    b = model.get_layer("up1_b_conv").get_weights()[0]
    assert a.shape == b.shape
    assert not np.allclose(a, b)


def test_builds_are_reproducible_from_the_seed():
    config = dataclasses.replace(SEED, num_filters_start=4)
    first = build_unet(config).get_weights()
    second = build_unet(config).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
