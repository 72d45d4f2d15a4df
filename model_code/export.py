"""The serving signatures of the exported SavedModel.

Every signature runs the Transform graph inside the model, so a client sends raw bytes and nothing
else, and preprocessing cannot drift from training.

  serving_default(examples: string[B])   serialized tf.Examples with the encoded image in `image`
      -> scores            float32[B, m, m, C]  softmax scores (m = mask size, C = classes)
  serving_images(images: string[B])       encoded image bytes (JPEG/PNG/GIF/BMP, any size, gray,
                                          RGB or RGBA) -- what TF Serving's REST API sends as b64
      -> class_ids                 int64[B, m, m]
         probabilities             float32[B, m, m, C]
         image_size                int32[B, 2]        original (height, width)
         full_resolution_class_ids int64[B, H, W]     class ids at each image's own resolution,
                                                      padded with -1 to the batch's largest image
         mask_png_bytes            string[B]          the full-resolution class ids as a PNG
  transform_features(examples)  -> Transform's outputs (image pixels as bytes, mask); TFMA uses
                                   it for labels.

The m x m map covers the whole image frame (see model_code.preprocessing), so the full-resolution
mask is a nearest-neighbour resize of it onto the original height and width.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from model_code import preprocessing

SCORES_KEY = "scores"


def image_size(encoded: tf.Tensor) -> tf.Tensor:
    """(height, width) of one encoded image; reads only the header of a JPEG."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int32),
        lambda: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False),
                         out_type=tf.int32)[:2])


def _full_resolution(class_ids: tf.Tensor, sizes: tf.Tensor):
    """Nearest-resizes each [m, m] map to its (h, w); returns padded ids and PNG bytes."""
    max_size = tf.reduce_max(sizes, axis=0)

    def one(args):
        ids, size = args
        full = tf.image.resize(ids[..., None], size, method="nearest")
        png = tf.io.encode_png(tf.cast(full, tf.uint8))
        padded = tf.pad(full[..., 0] + 1, [[0, max_size[0] - size[0]], [0, max_size[1] - size[1]]])
        return padded - 1, png

    return tf.map_fn(one, (class_ids, sizes), fn_output_signature=(
        tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([], tf.string)))


def make_signatures(model: keras.Model, tf_transform_output) -> dict:
    """Attaches the Transform layer to `model` (so it is saved with it) and builds signatures."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    image_spec = {preprocessing.IMAGE_KEY: raw_spec[preprocessing.IMAGE_KEY]}
    label_spec = dict(image_spec, **{preprocessing.MASK_KEY: raw_spec[preprocessing.MASK_KEY]})
    image_shape = raw_spec[preprocessing.IMAGE_KEY].shape  # [1]: SchemaGen infers shapes

    def scores_from_raw(raw_features):
        transformed = model.tft_layer(raw_features)
        images = preprocessing.decode_pixels(transformed[preprocessing.TRANSFORMED_IMAGE_KEY],
                                             model.input_shape[1])
        logits = model(images, training=False)
        return tf.nn.softmax(logits, axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return {SCORES_KEY: scores_from_raw(tf.io.parse_example(serialized, image_spec))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(images):
        raw = tf.reshape(images, [-1, *image_shape])
        probabilities = scores_from_raw({preprocessing.IMAGE_KEY: raw})
        class_ids = tf.argmax(probabilities, axis=-1)
        sizes = tf.map_fn(image_size, images, fn_output_signature=tf.TensorSpec([2], tf.int32))
        full, png = _full_resolution(class_ids, sizes)
        return {"class_ids": class_ids, "probabilities": probabilities, "image_size": sizes,
                "full_resolution_class_ids": full, "mask_png_bytes": png}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, label_spec))

    return {"serving_default": serve_examples, "serving_images": serve_images,
            "transform_features": transform_features}
