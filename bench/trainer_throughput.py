"""One side of the trainer benchmark, run in its own process (bench/run_all.py interleaves them).

  --side ours      the Trainer's input pipeline (model_code.trainer.make_dataset over Transform's
                   output) and model.fit, as run_fn does it
  --side tutorial  a faithful re-implementation of the tutorial's main(): tfds.load of the TFDS
                   files, preprocess_sample (bilinear resizes), cache, shuffle(50), batch, repeat,
                   data_augmentation, compute_sample_weights, prefetch, model.fit

Both train the same U-Net (the preset's, `seed` by default: 64 filters, batch 50) on the same
examples; `--precision` sets ours' precision as the Trainer would (the tutorial is float32).
Timing starts after `--warmup-steps` (which also fill each side's cache) and covers whole steps
until at least `--seconds` have passed. Prints one JSON line: images/s, the window, the
precision, and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


class _StepTimer:
    """Starts after `warmup` steps; stops training once `seconds` of whole steps are timed."""

    def __init__(self, warmup: int, seconds: float):
        self.warmup, self.seconds = warmup, seconds
        self.count, self.start, self.end, self.timed = 0, None, None, 0

    def on_batch_end(self, model):
        self.count += 1
        now = time.perf_counter()
        if self.count == self.warmup:
            self.start = now
        elif self.start is not None:
            self.timed, self.end = self.timed + 1, now
            if now - self.start >= self.seconds:
                model.stop_training = True


def _ours(config, transformed_dir: str, transform_graph: str, examples: int):
    import tensorflow_transform as tft

    from model_code.trainer import _parsed_dataset, make_dataset

    files = [os.path.join(transformed_dir, "Split-train", "*")]
    parsed = _parsed_dataset(files, tft.TFTransformOutput(transform_graph)).take(examples)
    return make_dataset(parsed, config, training=True)


def _tutorial(config, tfds_dir: str, examples: int):
    """The tutorial's load_dataset + preprocess_dataset('train'), on the same TFDS files."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    data = tfds.load("oxford_iiit_pet:4.*.*", split="train[:80%]+test[:80%]",
                     data_dir=tfds_dir).take(examples)
    size, mask = config.input_size, config.mask_size
    class_weights = tf.constant(config.class_weights)

    def preprocess_sample(sample):
        image = tf.image.resize(sample["image"], (size, size))
        labels = tf.image.resize(sample["segmentation_mask"], (mask, mask))
        return tf.cast(image, tf.float32) / 255.0, labels - 1

    def data_augmentation(inputs, labels):
        seed = 36
        inputs = tf.image.random_flip_left_right(inputs, seed=seed)
        inputs = tf.image.random_flip_up_down(inputs, seed=seed)
        labels = tf.image.random_flip_left_right(labels, seed=seed)
        labels = tf.image.random_flip_up_down(labels, seed=seed)
        return inputs, labels

    def compute_sample_weights(image, labels):
        weights = class_weights / tf.reduce_sum(class_weights)
        return image, labels, tf.gather(weights, indices=tf.cast(labels, tf.int32))

    return (data.map(preprocess_sample).cache().shuffle(config.shuffle_buffer)
            .batch(config.batch_size).repeat().map(data_augmentation)
            .map(compute_sample_weights).prefetch(tf.data.AUTOTUNE))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=["ours", "tutorial"], required=True)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--warmup-steps", type=int, default=6,
                        help="steps before timing; more than one pass over --examples, so the "
                             "caches are full")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed window, at least")
    parser.add_argument("--precision", default="float32",
                        help="ours only: auto, float32, mixed_bfloat16 or mixed_float16")
    parser.add_argument("--transformed", help="Transform's transformed_examples folder (ours)")
    parser.add_argument("--transform-graph", help="Transform's transform_graph folder (ours)")
    parser.add_argument("--tfds-dir", help="TFDS data_dir holding oxford_iiit_pet (tutorial)")
    args = parser.parse_args(argv)

    import tf_keras as keras

    from model_code import precision
    from model_code.config import get_preset
    from model_code.trainer import compile_model

    config = get_preset(args.preset)
    policy, _ = precision.choose(args.precision if args.side == "ours" else "float32")
    if args.side == "ours":
        dataset = _ours(config, args.transformed, args.transform_graph, args.examples)
    else:
        dataset = _tutorial(config, args.tfds_dir, args.examples)
    keras.mixed_precision.set_global_policy(policy)
    model = compile_model(config, 10 ** 6)
    if args.side == "tutorial":  # the tutorial compiles with plain 'accuracy' only
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=model.optimizer, metrics=["accuracy"])
    timer = _StepTimer(args.warmup_steps, args.seconds)
    model.fit(dataset, epochs=1, steps_per_epoch=10 ** 6, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(
                  on_train_batch_end=lambda batch, logs: timer.on_batch_end(model))])
    seconds = timer.end - timer.start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": args.side, "preset": args.preset, "precision": policy,
                      "images_per_s": timer.timed * config.batch_size / seconds,
                      "timed_steps": timer.timed, "seconds": seconds, "peak_rss_mb": peak_mb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
