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



def test_autograph_skips_tf_keras_and_training_is_unchanged(monkeypatch):
    """TF 2.16's AutoGraph re-converts tf_keras's source on every trace; the rule that stops it
    must not change what is trained: three steps from the same seed give the same weights."""
    import tf_keras as keras
    from tensorflow.python.autograph.core import config as autograph_config
    from tensorflow.python.autograph.impl import conversion

    from model_code import autograph_rules
    from model_code.config import SMOKE
    from model_code.trainer import compile_model

    # TF 2.16's rules as installed, whatever an earlier test in this process added.
    monkeypatch.setattr(autograph_config, "CONVERSION_RULES", tuple(
        rule for rule in autograph_config.CONVERSION_RULES if not rule.matches("tf_keras")))
    images = np.random.default_rng(0).random((4, SMOKE.input_size, SMOKE.input_size, 3),
                                             np.float32)

    def trained():
        keras.utils.set_random_seed(0)
        model = compile_model(SMOKE, total_steps=3)
        size = model.output_shape[1]
        masks = np.random.default_rng(1).integers(0, 3, (4, size, size))
        for _ in range(3):
            model.train_on_batch(images, masks, sample_weight=np.ones(masks.shape, np.float32))
        return model.get_weights()

    assert not conversion.is_allowlisted(keras.Model.train_step)
    converted = trained()
    assert autograph_rules.skip_tf_keras() and autograph_rules.skip_tf_keras()
    assert conversion.is_allowlisted(keras.Model.train_step)
    assert sum(rule.matches("tf_keras") for rule in autograph_config.CONVERSION_RULES) == 1
    for a, b in zip(converted, trained()):
        np.testing.assert_array_equal(a, b)
