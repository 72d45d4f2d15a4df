"""Choosing the training precision, and training under it: same model, same exported signatures."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from model_code import precision
from model_code.config import SMOKE, Config
from model_code.unet import build_unet


@pytest.mark.parametrize("flags, gpus, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, (), "mixed_bfloat16"),
    ({"avx2", "amx_bf16", "amx_tile"}, (), "mixed_bfloat16"),
    ({"avx2", "avx512f"}, (), "float32"),
    (set(), ((7, 5),), "mixed_float16"),
    (set(), ((8, 0), (9, 0)), "mixed_bfloat16"),
    ({"avx512_bf16"}, ((6, 1),), "float32"),  # a GPU trains; it decides
])
def test_auto_follows_the_hardware(flags, gpus, expected):
    assert precision.choose("auto", flags, gpus)[0] == expected


def test_an_explicit_choice_is_kept_and_a_wrong_one_named():
    assert precision.choose("float32", {"avx512_bf16"}, ()) == ("float32", "as configured")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Config(precision="fp8")


def test_this_machines_flags_are_read():
    flags = precision.cpu_flags()
    assert "sse2" in flags or not flags  # x86 Linux, or no /proc/cpuinfo at all


def test_mixed_policy_computes_in_bfloat16_with_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_unet(SMOKE)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("down0_a_conv").compute_dtype == "bfloat16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert all(v.dtype == tf.float32 for v in model.weights)  # variables stay float32
    images = tf.random.uniform([2, 100, 100, 3], seed=1)
    logits = model(images)
    assert logits.dtype == tf.float32

    float_model = build_unet(SMOKE)  # what the Trainer exports
    float_model.set_weights(model.get_weights())
    np.testing.assert_allclose(float_model(images).numpy(), logits.numpy(), atol=0.05)

