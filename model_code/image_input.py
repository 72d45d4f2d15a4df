"""Checks on encoded image bytes before anything decodes them: format, size limit, orientation.

The size of a JPEG, PNG, GIF or BMP is read from its header (`header_size`, a TensorFlow
function: the exported signatures run it in-graph, and `pets-unet-predict` and the batch job call
the same function eagerly), so a 500 KB PNG that would decode to 13000x13000 pixels is refused
before a byte of it is decoded. TensorFlow has `extract_jpeg_shape` for JPEG only; the other
three headers are read by hand here (PNG: IHDR width/height big-endian at bytes 16-24; GIF: the
logical screen, little-endian at bytes 6-10; BMP: BITMAPINFOHEADER, little-endian at 18-26,
height negative for top-down files). TensorFlow is imported by the functions that use it, so
that importing this module costs command-line tools nothing at start-up.
"""
from __future__ import annotations

import io
from typing import Optional, Tuple

from model_code.config import DEFAULT_MAX_IMAGE_PIXELS

READABLE = "JPEG, PNG, GIF or BMP"  # what TensorFlow's decode_image takes


def _unsigned(data: tf.Tensor, start: int, length: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `length` bytes at `start` of a scalar string, as int64."""
    import tensorflow as tf

    values = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in range(length)], tf.int64)
    return tf.reduce_sum(values * (weights[::-1] if big_endian else weights))


def header_size(encoded: tf.Tensor) -> tf.Tensor:
    """(height, width) int64 of one encoded image from its header alone; (0, 0) when the bytes
    are no JPEG, PNG, GIF or BMP header (decoding them then fails with TensorFlow's message)."""
    import tensorflow as tf

    encoded = tf.convert_to_tensor(encoded, tf.string)
    length = tf.strings.length(encoded)

    def starts_with(prefix: bytes, min_length: int):
        return tf.logical_and(length >= min_length,
                              tf.equal(tf.strings.substr(encoded, 0, tf.minimum(
                                  length, len(prefix))), prefix))

    zero = tf.zeros([2], tf.int64)

    def png():
        return tf.stack([_unsigned(encoded, 20, 4, True), _unsigned(encoded, 16, 4, True)])

    def gif():
        return tf.stack([_unsigned(encoded, 8, 2, False), _unsigned(encoded, 6, 2, False)])

    def bmp():
        height = _unsigned(encoded, 22, 4, False)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # top-down: negative
        return tf.stack([height, _unsigned(encoded, 18, 4, False)])

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)

    return tf.case([
        (tf.logical_and(tf.io.is_jpeg(encoded), length >= 4), jpeg),
        (starts_with(b"\x89PNG\r\n\x1a\n", 24), png),
        (tf.logical_or(starts_with(b"GIF87a", 10), starts_with(b"GIF89a", 10)), gif),
        (starts_with(b"BM", 26), bmp),
    ], default=lambda: zero, exclusive=True)


def assert_within_limit(sizes: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """An in-graph check that every (height, width) in `sizes` [batch, 2] has at most
    `max_pixels` pixels; its error names the first image that has more, its size and the limit.
    Use the returned tensor as a control dependency."""
    import tensorflow as tf

    pixels = sizes[:, 0] * sizes[:, 1]
    over = pixels > max_pixels

    def refuse():
        first = tf.argmax(tf.cast(over, tf.int32))
        message = tf.strings.format(
            "image {} of the batch is {}x{} pixels ({} megapixels); this model takes at most "
            f"{max_pixels / 1e6:g} megapixels (max_image_pixels): downscale it first",
            (first, sizes[first, 1], sizes[first, 0], pixels[first] // 1_000_000))
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(False)

    return tf.cond(tf.reduce_any(over), refuse, lambda: tf.constant(True))


def unsupported_format(data: bytes) -> Optional[str]:
    """A plain-words name for common photo formats TensorFlow cannot decode, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC/HEIF"
        if brand in (b"avif", b"avis"):
            return "AVIF"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    return None


def check(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Tuple[int, int]:
    """(height, width) from the header of an image the model can take; ValueError in words
    for an empty file, a format TensorFlow cannot decode, or an image over the limit.

    (0, 0) for bytes with no known header: decoding them gives the final word.
    """
    import tensorflow as tf

    if not data:
        raise ValueError("empty file")
    kind = unsupported_format(data)
    if kind:
        raise ValueError(f"{kind} images are not supported; convert to JPEG or PNG")
    try:
        height, width = (int(v) for v in header_size(tf.constant(data)).numpy())
    except tf.errors.InvalidArgumentError:  # a JPEG whose header is damaged
        raise ValueError(f"not an image this model reads ({READABLE}), or a damaged one") \
            from None
    if height * width > max_pixels:
        raise ValueError(f"{width}x{height} pixels ({height * width / 1e6:.1f} megapixels) is "
                         f"more than the limit of {max_pixels / 1e6:g} megapixels; downscale it")
    return height, width


def decode_failure(err: Exception) -> str:
    """The reason in words for an image TensorFlow could not decode (`err` its error)."""
    message = getattr(err, "message", None) or str(err)
    if "size too large" in message:
        return "too large for TensorFlow's PNG decoder (512 MiB decoded at most); downscale it"
    return f"not an image this model reads ({READABLE}), or a damaged one"


def upright(data: bytes) -> bytes:
    """The bytes of the image as displayed: a JPEG with an EXIF rotation is turned upright (and
    re-encoded losslessly as PNG); everything else is returned unchanged. Call `check` first:
    Pillow decodes the whole image to turn it."""
    if data[:2] != b"\xff\xd8":
        return data
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.getexif().get(0x0112, 1) in (1, None):  # Orientation: as stored
                return data
            turned = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return data  # not readable by Pillow (or too big for it): TensorFlow will say so
    out = io.BytesIO()
    turned.save(out, "PNG")
    return out.getvalue()
