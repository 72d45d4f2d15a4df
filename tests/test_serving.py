"""The pushed model is usable: raw-image signature, full-resolution masks, the predict command,
and safe against what careless and hostile callers send (huge images, empty batches)."""
import glob
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hostile_images import jpeg_claiming, png_bomb
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


def _mask(out, index):
    return tf.io.decode_png(out["mask_png_bytes"][index]).numpy()[..., 0]


@pytest.mark.parametrize("height, width, fmt, mode", [
    (37, 53, "PNG", "L"),        # grayscale, odd size
    (201, 99, "PNG", "RGBA"),    # alpha channel, tall
    (480, 640, "JPEG", "RGB"),   # a typical photo
    (1, 300, "PNG", "RGB"),      # a one-pixel-high strip
    (45, 35, "GIF", None),       # the other two formats TensorFlow decodes
    (23, 61, "BMP", "RGB"),
])
def test_full_resolution_mask_has_the_image_size(model, height, width, fmt, mode):
    rgb = _photo(height, width)
    pixels = {"L": rgb[..., 0], "RGBA": np.dstack([rgb, rgb[..., :1]]), "RGB": rgb,
              None: rgb}[mode]
    out = model.signatures["serving_images"](images=tf.constant([_encode(pixels, fmt, mode)]))
    assert out["image_size"].numpy().tolist() == [[height, width]]
    full = _mask(out, 0)
    assert full.shape == (height, width)
    assert set(np.unique(full)) <= {0, 1, 2}
    # Nearest-neighbour mapping of the 60x60 map onto the image frame.
    expected = tf.image.resize(out["class_ids"][0][..., None], [height, width], "nearest")
    np.testing.assert_array_equal(full, expected.numpy()[..., 0])
    counts = np.bincount(full.ravel(), minlength=3) / full.size
    np.testing.assert_allclose(out["class_fractions"].numpy()[0], counts, atol=1e-6)


def test_mixed_sizes_in_one_batch_are_not_padded(model):
    images = [_encode(_photo(40, 70, 1), "PNG"), _encode(_photo(90, 30, 2), "JPEG")]
    out = model.signatures["serving_images"](images=tf.constant(images))
    assert set(out) == {"class_ids", "probabilities", "image_size", "mask_png_bytes",
                        "class_fractions"}
    assert _mask(out, 0).shape == (40, 70) and _mask(out, 1).shape == (90, 30)


def test_empty_batches_give_empty_outputs(model):
    out = model.signatures["serving_images"](images=tf.constant([], tf.string))
    assert out["class_ids"].shape == (0, 60, 60) and out["mask_png_bytes"].shape == (0,)
    assert out["class_fractions"].shape == (0, 3) and out["image_size"].shape == (0, 2)
    scores = model.signatures["serving_default"](examples=tf.constant([], tf.string))["scores"]
    assert scores.shape == (0, 60, 60, 3)


def _example(image: bytes) -> bytes:
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    return tf.train.Example(features=tf.train.Features(
        feature={"image": feature})).SerializeToString()


@pytest.mark.parametrize("bomb, size", [
    (lambda: png_bomb(13000), "13000x13000 pixels (169 megapixels)"),
    (lambda: jpeg_claiming(30000, 30000), "30000x30000 pixels (900 megapixels)"),
])
def test_images_over_the_limit_are_refused_from_their_header(model, bomb, size):
    data = bomb()
    small = _encode(_photo(20, 20), "PNG")
    for call in (lambda: model.signatures["serving_images"](images=tf.constant([small, data])),
                 lambda: model.signatures["serving_default"](
                     examples=tf.constant([_example(small), _example(data)]))):
        with pytest.raises(tf.errors.InvalidArgumentError) as refused:
            call()
        assert (f"image 1 of the batch is {size}; this model takes at most 120 megapixels"
                in refused.value.message)


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
    with pytest.raises(predict.UsageError, match="no SavedModel"):
        predict.resolve_model_dir(str(tmp_path / "empty"))
    with pytest.raises(predict.UsageError, match="no such directory"):
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


def test_predict_refuses_huge_images_in_words_and_segments_the_rest(pushed, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(13000))
    claim = tmp_path / "huge.jpg"  # Pillow alone would raise DecompressionBombError here
    claim.write_bytes(jpeg_claiming(30000, 30000))
    good = tmp_path / "good.png"
    good.write_bytes(_encode(_photo(30, 20), "PNG"))
    out = tmp_path / "out"
    assert predict.main(["--model", pushed, str(bomb), str(claim), str(good),
                         "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {bomb}: 13000x13000 pixels (169.0 megapixels) is more than the limit of "
        "120 megapixels; downscale it",
        f"error: {claim}: 30000x30000 pixels (900.0 megapixels) is more than the limit of "
        "120 megapixels; downscale it",
        "2 of 3 files failed"]
    assert Image.open(out / "good_mask.png").size == (20, 30)


def test_predict_outputs_never_overwrite_each_other(pushed, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inputs = {"a/cat.jpg": (30, 20, "JPEG"), "a/cat.png": (25, 40, "PNG"),
              "b/cat.jpg": (50, 10, "JPEG")}
    for name, (height, width, fmt) in inputs.items():
        (tmp_path / name).write_bytes(_encode(_photo(height, width), fmt))
    out = tmp_path / "out"
    assert predict.main(["--model", pushed, *(str(tmp_path / name) for name in inputs),
                         "--out", str(out)]) == 0
    for mask, (height, width, _) in zip(["a/cat_jpg", "a/cat_png", "b/cat"], inputs.values()):
        assert Image.open(out / f"{mask}_mask.png").size == (width, height)
        assert (out / f"{mask}_panels.png").is_file()


def test_predict_argument_and_model_errors_are_one_line(pushed, tmp_path, capsys):
    photo = tmp_path / "p.png"
    photo.write_bytes(_encode(_photo(20, 20), "PNG"))
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"\x00garbage, not a SavedModel")
    for argv, message in [
            (["--model", pushed, str(photo), "--out", str(a_file)],
             f"error: --out {a_file} is a file; name a folder"),
            (["--model", str(broken.parent), str(photo), "--out", str(tmp_path / "o")],
             f"error: --model {broken}: not a loadable SavedModel"),
            (["--model", pushed, str(photo), "--out", str(tmp_path / "o"),
              "--true-mask-dir", str(tmp_path / "missing")],
             f"error: --true-mask-dir {tmp_path / 'missing'}: no such folder")]:
        assert predict.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(message), err


def test_a_trimap_that_is_no_png_is_a_warning_not_a_crash(pushed, tmp_path, capsys):
    (tmp_path / "trimaps").mkdir()
    Image.fromarray(np.full((20, 20), 2, np.uint8)).save(tmp_path / "trimaps" / "pet.png", "JPEG")
    (tmp_path / "pet.png").write_bytes(_encode(_photo(20, 20), "PNG"))
    assert predict.main(["--model", pushed, str(tmp_path / "pet.png"), "--out",
                         str(tmp_path / "out"), "--true-mask-dir",
                         str(tmp_path / "trimaps")]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (f"warning: {tmp_path / 'trimaps' / 'pet.png'} is a JPEG, not a PNG trimap; "
                   "the figure is drawn without it")
    assert (tmp_path / "out" / "pet_mask.png").is_file()
