"""Transform's preprocessing_fn: known inputs give known outputs."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model_code.config import SMOKE
from model_code.preprocessing import decode_pixels, preprocessing_fn


def _png(array: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def _run(images, masks):
    batch = {
        "image": tf.constant([[b] for b in images]),
        "segmentation_mask": tf.constant([[b] for b in masks]),
    }
    out = preprocessing_fn(batch, SMOKE.as_custom_config())
    assert out["image"].dtype == tf.string  # pixels as bytes; the model decodes them
    return decode_pixels(out["image"], SMOKE.input_size).numpy(), out["mask"].numpy()


@pytest.fixture
def trimap_120():
    """120x120 trimap: pet (1) top-left quarter, border (3) a 2-px frame around it, rest bg (2)."""
    trimap = np.full((120, 120), 2, np.uint8)
    trimap[0:62, 0:62] = 3
    trimap[0:60, 0:60] = 1
    return trimap


def test_image_is_scaled_and_mirrored_around_the_mask_frame(trimap_120):
    # A 60x60 image needs no resize to the 60x60 frame, so values must come through exactly.
    rgb = np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    image, _ = _run([_png(rgb, "RGB")], [_png(trimap_120, "L")])
    assert image.shape == (1, 100, 100, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 20:80, 20:80], rgb / 255.0, atol=1e-5)
    # Mirror padding: row 19 of the input is row 1 of the frame (reflection, edge not repeated).
    np.testing.assert_allclose(image[0, 19, 20:80], rgb[1] / 255.0, atol=1e-5)
    np.testing.assert_allclose(image[0, 20:80, 0], rgb[:, 20] / 255.0, atol=1e-5)


def test_mask_is_nearest_resized_and_shifted(trimap_120):
    rgb = np.zeros((120, 120, 3), np.uint8)
    _, mask = _run([_png(rgb, "RGB")], [_png(trimap_120, "L")])
    assert mask.shape == (1, 60, 60) and mask.dtype == np.int64
    expected = np.full((60, 60), 1)
    expected[0:31, 0:31] = 2
    expected[0:30, 0:30] = 0
    np.testing.assert_array_equal(mask[0], expected)


def test_mask_boundaries_get_no_fractional_classes():
    # Fine stripes of pet/border/background: bilinear resizing would blend them into new values.
    trimap = np.tile(np.repeat(np.array([1, 3, 2], np.uint8), 3), (333, 37))[:, :333]
    _, mask = _run([_png(np.zeros((333, 333, 3), np.uint8), "RGB")], [_png(trimap, "L")])
    assert set(np.unique(mask)) <= {0, 1, 2}


@pytest.mark.parametrize("mode, channels", [("L", None), ("RGBA", 4)])
def test_grayscale_and_rgba_sources_give_three_channels(mode, channels, trimap_120):
    rng = np.random.default_rng(1)
    shape = (80, 90) if channels is None else (80, 90, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image, _ = _run([_png(pixels, mode)], [_png(trimap_120, "L")])
    assert image.shape == (1, 100, 100, 3)
    if mode == "L":
        np.testing.assert_array_equal(image[0, ..., 0], image[0, ..., 1])
        np.testing.assert_array_equal(image[0, ..., 0], image[0, ..., 2])


def test_png_bytes_and_jpeg_bytes_decode_alike(trimap_120):
    rgb = np.full((64, 48, 3), (200, 40, 90), np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=100)
    image, _ = _run([_png(rgb, "RGB"), jpeg.getvalue()], [_png(trimap_120, "L")] * 2)
    np.testing.assert_allclose(image[0], image[1], atol=3 / 255)


def test_stored_pixels_come_back_as_the_floats_they_round_to():
    from model_code.preprocessing import encode_pixels

    floats = tf.random.stateless_uniform([2, 100, 100, 3], seed=[1, 2])
    encoded = encode_pixels(floats)
    assert encoded.shape == (2,) and len(encoded[0].numpy()) < 100 * 100 * 3 + 64
    np.testing.assert_allclose(decode_pixels(encoded, 100), floats, atol=0.5 / 255 + 1e-7)
