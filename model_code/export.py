"""The serving signatures of the exported SavedModel.

Every signature runs the Transform graph inside the model, so a client sends raw bytes and nothing
else, and preprocessing cannot drift from training.

  serving_default(examples: string[B])   serialized tf.Examples with the encoded image in `image`
      -> scores            float32[B, m, m, C]  softmax scores (m = mask size, C = classes)
  serving_images(images: string[B])       encoded image bytes (JPEG/PNG/GIF/BMP, any size, gray,
                                          RGB or RGBA) -- what TF Serving's REST API sends as b64
      -> class_ids        int64[B, m, m]
         probabilities    float32[B, m, m, C]
         image_size       int32[B, 2]        original (height, width)
         mask_png_bytes   string[B]          the class ids at each image's own resolution, as a
                                             one-channel 8-bit PNG
         class_fractions  float32[B, C]      share of each image's pixels in each class
  transform_features(examples)  -> Transform's outputs (image pixels as bytes, mask); TFMA uses
                                   it for labels.

The m x m map covers the whole image frame (see model_code.preprocessing), so the full-resolution
mask is a nearest-neighbour resize of it onto the original height and width.

Memory is bounded by what is sent: every image is checked against `max_image_pixels` from its
header before anything is decoded (model_code.image_input), and each full-resolution mask is
made, PNG-encoded and dropped one image at a time, never padded to the batch's largest image.
An empty batch gives empty outputs.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from model_code import autograph_rules, image_input, preprocessing

SCORES_KEY = "scores"


def _full_resolution(class_ids: tf.Tensor, sizes: tf.Tensor, num_classes: int):
    """Each [m, m] map nearest-resized to its image's (h, w): PNG bytes and class fractions."""

    def one(args):
        ids, size = args[0], tf.cast(args[1], tf.int32)
        full = tf.image.resize(tf.cast(ids, tf.uint8)[..., None], size, method="nearest")
        png = tf.io.encode_png(full)
        # How many full-resolution rows (columns) each map row (column) becomes, by the same
        # resize, so the fractions are exact without counting h*w pixels.
        m = tf.shape(ids)[0]
        cells = tf.reshape(tf.range(m), [m, 1, 1])
        rows = tf.math.bincount(tf.image.resize(cells, [size[0], 1], method="nearest"),
                                minlength=m, maxlength=m, dtype=tf.float32)
        cols = tf.math.bincount(tf.image.resize(cells, [size[1], 1], method="nearest"),
                                minlength=m, maxlength=m, dtype=tf.float32)
        area = rows[:, None] * cols[None, :]
        per_class = tf.reduce_sum(tf.one_hot(ids, num_classes) * area[..., None], axis=[0, 1])
        return png, per_class / tf.maximum(tf.reduce_sum(area), 1.0)

    return tf.map_fn(one, (class_ids, sizes), fn_output_signature=(
        tf.TensorSpec([], tf.string), tf.TensorSpec([num_classes], tf.float32)))


def _header_sizes(images: tf.Tensor) -> tf.Tensor:
    return tf.map_fn(image_input.header_size, images,
                     fn_output_signature=tf.TensorSpec([2], tf.int64))


def make_signatures(model: keras.Model, tf_transform_output,
                    max_image_pixels: int = image_input.DEFAULT_MAX_IMAGE_PIXELS) -> dict:
    """Attaches the Transform layer to `model` (so it is saved with it) and builds signatures."""
    autograph_rules.skip_tf_keras()
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    image_spec = {preprocessing.IMAGE_KEY: raw_spec[preprocessing.IMAGE_KEY]}
    label_spec = dict(image_spec, **{preprocessing.MASK_KEY: raw_spec[preprocessing.MASK_KEY]})
    image_shape = raw_spec[preprocessing.IMAGE_KEY].shape  # [1]: SchemaGen infers shapes

    mask_size, num_classes = model.output_shape[1], model.output_shape[-1]

    def scores(images):
        """Softmax scores [B, m, m, C] for encoded images [B] already checked for size."""
        def model_scores():
            raw = {preprocessing.IMAGE_KEY: tf.reshape(images, [-1, *image_shape])}
            transformed = model.tft_layer(raw)
            pixels = preprocessing.decode_pixels(
                transformed[preprocessing.TRANSFORMED_IMAGE_KEY], model.input_shape[1])
            return tf.nn.softmax(model(pixels, training=False), axis=-1)

        # The model cannot run on zero images (its convolutions see no channels then).
        return tf.cond(tf.size(images) > 0, model_scores,
                       lambda: tf.zeros([0, mask_size, mask_size, num_classes]))

    # The signatures have no Python control flow on tensors (tf.cond and tf.map_fn are explicit),
    # so AutoGraph would only re-read this module's, TFT's and tf_keras's source at each export.
    def checked(images, sizes):
        with tf.control_dependencies([image_input.assert_within_limit(sizes, max_image_pixels)]):
            return tf.identity(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
                 autograph=False)
    def serve_examples(serialized):
        images = preprocessing.squeeze_single_value(
            tf.io.parse_example(serialized, image_spec)[preprocessing.IMAGE_KEY])
        return {SCORES_KEY: scores(checked(images, _header_sizes(images)))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")],
                 autograph=False)
    def serve_images(images):
        sizes = _header_sizes(images)
        probabilities = scores(checked(images, sizes))
        class_ids = tf.argmax(probabilities, axis=-1)
        png, fractions = _full_resolution(class_ids, sizes, num_classes)
        return {"class_ids": class_ids, "probabilities": probabilities,
                "image_size": tf.cast(sizes, tf.int32), "mask_png_bytes": png,
                "class_fractions": fractions}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
                 autograph=False)
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, label_spec))

    return {"serving_default": serve_examples, "serving_images": serve_images,
            "transform_features": transform_features}
