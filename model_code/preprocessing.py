"""Transform's `preprocessing_fn`: raw Oxford-Pets tf.Examples -> model-ready tensors.

The same graph runs in the Transform component (training data) and inside the exported model
(serving), so there is one definition of preprocessing and no training/serving skew. It has no
full-pass analyzers (tft.mean, vocabularies, ...): its graph does not depend on the data, which is
what lets continuous training reuse earlier spans' transformed examples (components.span_window);
adding one would mean transforming the whole window again each run.

Outputs:
  image: string  [batch]: each image's pixels, [input, input, 3] uint8, as one bytes value
         (encode_pixels); the model reads them back as float32 in [0, 1] with decode_pixels,
         in its input pipeline and inside the exported signatures
  mask:  int64   [batch, mask, mask] with class ids 0 = pet, 1 = background, 2 = border

Pixels are stored as bytes rather than the float32 [0, 1] values the model takes: a fifth of the
size after gzip and half of Transform's time on 7,349 pets (bench/README.md); scaling to [0, 1]
happens in the model's graph instead. tf.Example has no 8-bit type, hence one bytes value.

Three deliberate differences from the tutorial:
  * The image is aligned with the mask. The U-Net's unpadded convolutions make its 60x60 output see
    only the centre of a 100x100 input, yet the tutorial stretches the whole image to 100x100 and
    the whole mask to 60x60, so labels and the pixels under them drift apart by up to 20 input
    pixels towards the edges (a translation-equivariant network cannot learn that shift). We do what
    the U-Net paper does (overlap-tile): resize the image to the mask's frame (60x60) and extend it
    by mirroring to the input size (100x100), so every output pixel sits over its own image pixel
    and the predicted mask covers the whole image.
  * Masks are resized with nearest-neighbour. The tutorial resizes them bilinearly, which invents
    fractional class ids on every boundary (e.g. 1.5 between pet and background).
  * Images are decoded with `decode_image(channels=3)` rather than assuming RGB JPEG: the real data
    holds grayscale and RGBA images and PNG bytes under .jpg names.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from model_code.config import Config

IMAGE_KEY = "image"
MASK_KEY = "segmentation_mask"
TRANSFORMED_IMAGE_KEY = "image"
TRANSFORMED_MASK_KEY = "mask"


def squeeze_single_value(feature: tf.Tensor) -> tf.Tensor:
    """Raw bytes features arrive as [batch, 1] (FixedLen) or sparse [batch, None] (VarLen)."""
    if isinstance(feature, tf.SparseTensor):
        feature = tf.sparse.to_dense(feature, default_value=b"")
    return tf.reshape(feature, [-1])


def decode_and_resize_images(encoded: tf.Tensor, size: int, frame_size: int) -> tf.Tensor:
    """Encoded image bytes [batch] -> float32 [batch, size, size, 3] scaled to [0, 1].

    The whole image is resized to `frame_size` (the mask's size) and mirrored outwards to `size`.
    """
    margin = (size - frame_size) // 2
    if margin < 0 or size - frame_size != 2 * margin or margin >= frame_size:
        raise ValueError(f"cannot mirror-pad a {frame_size}px frame to {size}px")

    def decode_one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(image, [frame_size, frame_size], method="bilinear",
                                antialias=True)
        image = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]], mode="REFLECT")
        return tf.clip_by_value(image / 255.0, 0.0, 1.0)

    return tf.map_fn(decode_one, encoded,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))


def encode_pixels(images: tf.Tensor) -> tf.Tensor:
    """float32 [batch, s, s, 3] in [0, 1] -> string [batch], each image's pixels as uint8."""
    pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
    return tf.map_fn(tf.io.serialize_tensor, pixels, fn_output_signature=tf.string)


def decode_image_pixels(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """One encode_pixels value (a scalar string) -> float32 [size, size, 3] in [0, 1]."""
    pixels = tf.reshape(tf.io.parse_tensor(encoded, tf.uint8), [size, size, 3])
    return tf.cast(pixels, tf.float32) / 255.0


def decode_pixels(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """encode_pixels' string [batch] -> float32 [batch, size, size, 3] in [0, 1]."""
    return tf.map_fn(lambda value: decode_image_pixels(value, size), encoded,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))


def decode_and_resize_masks(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """PNG trimap bytes [batch] (values 1..3) -> int64 [batch, size, size] class ids 0..2."""

    def decode_one(data):
        trimap = tf.io.decode_png(data, channels=1)
        trimap = tf.image.resize(trimap, [size, size], method="nearest")
        return tf.cast(trimap[..., 0], tf.int64) - 1

    return tf.map_fn(decode_one, encoded,
                     fn_output_signature=tf.TensorSpec([size, size], tf.int64))


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """TFT entry point (`model_code.preprocessing.preprocessing_fn`); config via custom_config."""
    config = Config.from_custom_config(custom_config)
    return {
        TRANSFORMED_IMAGE_KEY: encode_pixels(decode_and_resize_images(
            squeeze_single_value(inputs[IMAGE_KEY]), config.input_size, config.mask_size)),
        TRANSFORMED_MASK_KEY: decode_and_resize_masks(
            squeeze_single_value(inputs[MASK_KEY]), config.mask_size),
    }
