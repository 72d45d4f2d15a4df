"""AutoGraph leaves tf_keras's own code alone, as TensorFlow after 2.16 does.

TF 2.16's AutoGraph skips modules named `keras` but not `tf_keras` (Keras 2 as its own package),
so every trace of the U-Net's train, test and predict steps, and every SavedModel export,
re-converts tf_keras's engine and layer source to graph code: about 10 s of each Trainer's (and
each Tuner trial's) first epoch and a few seconds of each export here (bench/first_epoch.py).
TensorFlow's rule list has since gained `DoNotConvert("tf_keras")`
(tensorflow/python/autograph/core/config.py); `skip_tf_keras` adds that rule to this process.
The step function Keras hands to tf.function is still converted (tf.function asks for it), so
tf_keras traces exactly as Keras 2 did under TF 2.15 and the graphs are the same. Written by hand:
no public API sets a package-wide rule; `tf.autograph.experimental.do_not_convert` marks single
functions, and Keras's own save-time traces are out of our reach.
"""
from __future__ import annotations


def skip_tf_keras() -> bool:
    """Adds the rule once; False when this TensorFlow has no such rule list (nothing changed)."""
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:
        return False
    rules = getattr(config, "CONVERSION_RULES", None)
    if rules is None:
        return False
    if not any(rule.matches("tf_keras") for rule in rules):
        config.CONVERSION_RULES = (*rules, config.DoNotConvert("tf_keras"))
    return True
