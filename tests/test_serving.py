"""The pushed model is usable: raw-image signature, full-resolution masks, the predict command."""
import glob
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model_code import predict


@pytest.fixture(scope="module")
def pushed(smoke_runs):
    _, first, _, _ = smoke_runs
    return first.pushed_destination


@pytest.fixture(scope="module")
def model(pushed):
    return tf.saved_model.load(pushed)


def _encode(array, fmt, mode=None):
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, fmt)
    return out.getvalue()


def _photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_both_signatures_give_identical_class_maps(model, tfds_pets_dir):
    files = glob.glob(os.path.join(tfds_pets_dir, "oxford_iiit_pet", "4.0.0", "*test.tfrecord*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files).take(4)]
    images = [tf.train.Example.FromString(r).features.feature["image"].bytes_list.value[0]
              for r in records]
    from_examples = model.signatures["serving_default"](examples=tf.constant(records))["scores"]
    from_images = model.signatures["serving_images"](images=tf.constant(images))
    np.testing.assert_array_equal(tf.argmax(from_examples, -1).numpy(),
                                  from_images["class_ids"].numpy())
    np.testing.assert_allclose(from_examples.numpy(), from_images["probabilities"].numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("height, width, fmt, mode", [
    (37, 53, "PNG", "L"),        # grayscale, odd size
    (201, 99, "PNG", "RGBA"),    # alpha channel, tall
    (480, 640, "JPEG", "RGB"),   # a typical photo
    (1, 300, "PNG", "RGB"),      # a one-pixel-high strip
])
def test_full_resolution_mask_has_the_image_size(model, height, width, fmt, mode):
    rgb = _photo(height, width)
    pixels = {"L": rgb[..., 0], "RGBA": np.dstack([rgb, rgb[..., :1]]), "RGB": rgb}[mode]
    out = model.signatures["serving_images"](images=tf.constant([_encode(pixels, fmt, mode)]))
    assert out["image_size"].numpy().tolist() == [[height, width]]
    full = out["full_resolution_class_ids"].numpy()[0]
    assert full.shape == (height, width)
    assert set(np.unique(full)) <= {0, 1, 2}
    png = tf.io.decode_png(out["mask_png_bytes"][0]).numpy()[..., 0]
    np.testing.assert_array_equal(png, full)
    # Nearest-neighbour mapping of the 60x60 map onto the image frame.
    expected = tf.image.resize(out["class_ids"][0][..., None], [height, width], "nearest")
    np.testing.assert_array_equal(full, expected.numpy()[..., 0])


def test_mixed_sizes_in_one_batch_are_padded_with_minus_one(model):
    images = [_encode(_photo(40, 70, 1), "PNG"), _encode(_photo(90, 30, 2), "JPEG")]
    out = model.signatures["serving_images"](images=tf.constant(images))
    full = out["full_resolution_class_ids"].numpy()
    assert full.shape == (2, 90, 70)
    assert (full[0, 40:, :] == -1).all() and (full[1, :, 30:] == -1).all()
    assert (full[0, :40, :70] >= 0).all() and (full[1, :90, :30] >= 0).all()


def test_predict_command_writes_pngs_and_reports_bad_files(pushed, tmp_path, capsys):
    good = tmp_path / "good_cat.jpg"
    good.write_bytes(_encode(_photo(120, 90), "JPEG"))
    not_image = tmp_path / "notes.jpg"
    not_image.write_bytes(b"this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    serving_dir = os.path.dirname(pushed)  # the newest version is picked from the serving dir
    code = predict.main(["--model", serving_dir, str(not_image), str(good), str(empty),
                         "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{not_image}: not an image this model reads (JPEG, PNG, GIF or BMP)" in err
    assert "DecodeImage" not in err and "function_node" not in err
    assert f"{empty}: empty file" in err
    assert "2 of 3 files failed" in err
    mask = np.asarray(Image.open(out / "good_cat_mask.png"))
    assert mask.shape == (120, 90) and set(np.unique(mask)) <= {0, 1, 2}
    panels = Image.open(out / "good_cat_panels.png")
    assert panels.width > 3 * 256 * 90 / 120  # input, predicted mask, overlay
    assert sorted(os.listdir(out)) == ["good_cat_mask.png", "good_cat_panels.png"]


def test_predict_command_shows_the_true_mask_when_given(pushed, tmp_path):
    (tmp_path / "trimaps").mkdir()
    Image.fromarray(np.full((50, 50), 2, np.uint8)).save(tmp_path / "trimaps" / "pet.png")
    (tmp_path / "pet.png").write_bytes(_encode(_photo(50, 50), "PNG"))
    assert predict.main(["--model", pushed, str(tmp_path / "pet.png"), "--out",
                         str(tmp_path / "out"), "--true-mask-dir", str(tmp_path / "trimaps")]) == 0
    with_truth = Image.open(tmp_path / "out" / "pet_panels.png").width
    assert predict.main(["--model", pushed, str(tmp_path / "pet.png"), "--out",
                         str(tmp_path / "out2")]) == 0
    assert with_truth > Image.open(tmp_path / "out2" / "pet_panels.png").width


def test_model_dir_resolution(tmp_path):
    for version in ("9", "10", "2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    assert predict.resolve_model_dir(str(tmp_path)) == str(tmp_path / "10")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        predict.resolve_model_dir(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        predict.resolve_model_dir(str(tmp_path / "missing"))


def test_formats_tensorflow_cannot_read_are_named_in_words(pushed, tmp_path, capsys):
    webp = tmp_path / "photo.webp"
    webp.write_bytes(_encode(_photo(40, 30), "WEBP"))
    tiff = tmp_path / "scan.tif"
    tiff.write_bytes(_encode(_photo(40, 30), "TIFF"))
    heic = tmp_path / "phone.heic"  # the container's first bytes; Pillow cannot write HEIC
    heic.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)
    assert predict.main(["--model", pushed, str(webp), str(tiff), str(heic),
                         "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{webp}: WebP images are not supported; convert to JPEG or PNG" in err
    assert f"{tiff}: TIFF images are not supported" in err
    assert f"{heic}: HEIC/HEIF images are not supported" in err


def test_a_sideways_phone_photo_is_segmented_as_displayed(pushed, tmp_path):
    stored = Image.fromarray(_photo(30, 40))  # stored 40 wide, 30 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": shown 30 wide, 40 high
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes())
    assert predict.main(["--model", pushed, str(path), "--out", str(tmp_path / "out")]) == 0
    mask = Image.open(tmp_path / "out" / "phone_mask.png")
    assert mask.size == (30, 40)  # (width, height) as any viewer shows the photo
