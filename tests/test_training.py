"""Learning-rate schedule, paired augmentation and pixel weights of the Trainer."""
import numpy as np
import tensorflow as tf

from model_code.config import SEED
from model_code.trainer import build_lr_schedule, pixel_weights, random_flip_pair


def test_schedule_boundaries_follow_the_step_count():
    assert build_lr_schedule(SEED, 1000).boundaries == [200, 500, 800]
    assert build_lr_schedule(SEED, 2950).boundaries == [590, 1475, 2360]
    assert build_lr_schedule(SEED, 10).boundaries == [2, 5, 8]
    schedule = build_lr_schedule(SEED, 1000)
    rates = [float(schedule(step)) for step in (0, 200, 201, 500, 501, 800, 801, 999)]
    np.testing.assert_allclose(rates, [3e-4, 3e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6])


def test_tiny_runs_still_have_increasing_boundaries():
    assert build_lr_schedule(SEED, 1).boundaries == [1, 2, 3]


def test_flips_are_applied_to_image_and_mask_together():
    # The mask is the centre of the image's first channel, so any unpaired flip shows.
    image = tf.random.uniform([100, 100, 3])
    mask = tf.cast(image[20:80, 20:80, 0] * 1000, tf.int64)
    variants = {(lr, ud): image.numpy()[:, ::-1 if lr else 1][::-1 if ud else 1]
                for lr in (False, True) for ud in (False, True)}
    tf.random.set_seed(0)
    seen = set()
    for _ in range(64):
        flipped_image, flipped_mask = random_flip_pair(image, mask)
        expected = tf.cast(flipped_image[20:80, 20:80, 0] * 1000, tf.int64)
        np.testing.assert_array_equal(flipped_mask.numpy(), expected.numpy())
        seen.update(k for k, v in variants.items() if np.array_equal(v, flipped_image.numpy()))
    assert len(seen) == 4  # no flip, left-right, up-down, both


def test_pixel_weights_are_the_normalised_class_weights():
    weights = pixel_weights(tf.constant([[0, 1, 2]], tf.int64), (1.0, 1.0, 2.0))
    np.testing.assert_allclose(weights.numpy(), [[0.25, 0.25, 0.5]])
