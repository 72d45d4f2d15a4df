"""pets-unet-batch-predict: a whole folder through Beam, its masks, index and failure list."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from hostile_images import png_bomb
from model_code import batch_predict, batch_steps, image_input, predict

COMMAND = os.path.join(os.path.dirname(sys.executable), "pets-unet-batch-predict")


@pytest.fixture(scope="module")
def pushed(smoke_runs):
    _, first, _, _ = smoke_runs
    return first.pushed_destination


def _photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encode(array, fmt, **kwargs):
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **kwargs)
    return out.getvalue()


def _sideways_jpeg():
    """Stored 40 wide and 30 high, with EXIF orientation 6: shown 30 wide and 40 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo(30, 40, 7), "JPEG", exif=exif.tobytes())


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Nested folders, one name in two folders, an EXIF-rotated JPEG and a few bad files."""
    root = tmp_path_factory.mktemp("collection") / "photos"
    good = {
        "cat.jpg": _encode(_photo(120, 90, 1), "JPEG"),
        "cat.png": _encode(_photo(33, 47, 2), "PNG"),  # same stem as cat.jpg, same folder
        "2023/summer/cat.jpg": _encode(_photo(375, 500, 3), "JPEG"),  # same name, other folder
        "2023/gray.png": _encode(_photo(61, 20, 4)[..., 0], "PNG"),
        "2024/phone.jpg": _sideways_jpeg(),
    }
    truncated = _encode(_photo(200, 150, 5), "JPEG", quality=95)
    bad = {
        "notes.jpg": (b"this is not an image", "not an image this model reads"),
        "2024/photo.webp": (_encode(_photo(40, 30), "WEBP"), "WebP images are not supported"),
        "2024/huge.png": (png_bomb(13000), "13000x13000 pixels (169.0 megapixels) is more than the "
                                       "limit of 120 megapixels"),
        # A valid JPEG header and only half the data: only decoding it can tell.
        "2023/summer/cut.jpg": (truncated[:len(truncated) // 2], "or a damaged one"),
    }
    for name, data in [*good.items(), *((n, d) for n, (d, _) in bad.items())]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root, sorted(good), {name: reason for name, (_, reason) in bad.items()}


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _run(*args):
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=300)


def test_a_folder_is_segmented_with_an_index_and_a_failure_list(pushed, collection, tmp_path):
    root, good, bad = collection
    serving_dir = os.path.dirname(pushed)
    out = tmp_path / "masks"
    # The README's command.
    done = _run("--model", serving_dir, "--input", f"{root}/**", "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(good)} photos segmented, {len(bad)} failed" in done.stdout
    assert "Traceback" not in done.stderr

    rows = {row["path"]: row for row in _read_jsonl(out / "index.jsonl")}
    assert sorted(rows) == [str(root / name) for name in good]
    model_dir = predict.resolve_model_dir(serving_dir)  # the newest version
    version = os.path.basename(model_dir)
    assert f"model: {model_dir}" in done.stdout
    serve = tf.saved_model.load(model_dir).signatures["serving_images"]
    for name in good:
        row = rows[str(root / name)]
        assert row["mask"] == name + ".mask.png"
        with Image.open(root / name) as photo:
            shown = ImageOps.exif_transpose(photo).size  # (width, height) as viewers show it
        mask = Image.open(out / row["mask"])
        assert mask.size == shown == (row["width"], row["height"]), name
        assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 1, 2}
        # This photo's own mask: the model's answer for the photo as displayed.
        upright = image_input.upright((root / name).read_bytes())
        expected = tf.io.decode_png(serve(images=tf.constant([upright]))["mask_png_bytes"][0])
        np.testing.assert_array_equal(np.asarray(mask), expected.numpy()[..., 0])
        shares = [row[f"{c}_fraction"] for c in ("pet", "background", "border")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
        counts = np.bincount(np.asarray(mask).ravel(), minlength=3) / (mask.width * mask.height)
        np.testing.assert_allclose(shares, counts, atol=1e-5)
        assert row["model_version"] == version
    assert rows[str(root / "2024/phone.jpg")]["width"] == 30  # turned upright first

    failures = {row["path"]: row["reason"] for row in _read_jsonl(out / "failures.jsonl")}
    assert sorted(failures) == [str(root / name) for name in sorted(bad)]
    for name, words in bad.items():
        assert words in failures[str(root / name)], failures[str(root / name)]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted([f"{name}.mask.png" for name in good]
                             + ["failures.jsonl", "index.jsonl"])


def test_a_list_of_paths_is_read_from_its_folder(pushed, collection, tmp_path):
    root, _, _ = collection
    listing = root.parent / "some.txt"
    listing.write_text("# two photos and a missing one\nphotos/cat.png\n\n"
                       f"{root}/2023/gray.png\nphotos/gone.jpg\n")
    out = tmp_path / "masks"
    done = _run("--model", pushed, "--input", str(listing), "--output", str(out),
                "--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "in_memory" in done.stdout
    # Names are relative to the folder the listed paths share.
    assert sorted(row["mask"] for row in _read_jsonl(out / "index.jsonl")) == [
        "2023/gray.png.mask.png", "cat.png.mask.png"]
    [missing] = _read_jsonl(out / "failures.jsonl")
    assert missing["path"] == str(root / "gone.jpg")
    assert missing["reason"].startswith("cannot read it")


def test_an_empty_pattern_and_an_unwritable_output_are_one_error_line(pushed, collection,
                                                                      tmp_path):
    root, _, _ = collection
    done = _run("--model", pushed, "--input", f"{root}/**.tiff", "--output", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --input {root}/**.tiff: no files match"]

    a_file = root / "cat.jpg"
    done = _run("--model", pushed, "--input", f"{root}/**", "--output", str(a_file))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --output {a_file} is a file; name a folder (it is created if missing)"]


def test_a_batch_with_an_undecodable_photo_is_retried_photo_by_photo(pushed, collection):
    root, _, _ = collection
    handler = batch_steps.ImagesModelHandler(pushed)
    model = handler.load_model()
    names = ["cat.jpg", "2023/summer/cut.jpg", "cat.png"]
    photos = [batch_steps.Photo(str(root / n), n, (root / n).read_bytes(), 1) for n in names]
    results = handler.run_inference(photos, model)
    assert [type(r).__name__ for r in results] == ["Segmented", "Failed", "Segmented"]
    assert [r.path for r in results] == [p.path for p in photos]
    assert (results[0].width, results[0].height) == (90, 120)


def test_batches_are_bounded_by_count_and_by_pixels():
    def weight(pixels):
        return batch_steps.batch_weight(batch_steps.Photo("p", "n", b"", pixels))

    units = batch_steps.BATCH_UNITS
    assert weight(0) == weight(500 * 375) == 1  # up to BATCH_UNITS small photos per batch
    assert weight(4000 * 3000) == 8  # two 12-megapixel photos per batch
    assert weight(119_000_000) == units  # one alone


def test_mask_names_mirror_the_input_below_its_folder():
    assert batch_predict.parse_inputs("/data/photos/") == batch_predict.Inputs(
        pattern="/data/photos/**", base="/data/photos/")
    assert batch_predict.parse_inputs("gs://b/photos/2023/*/*.jpg").base == "gs://b/photos/2023/"
    assert batch_predict.parse_inputs("gs://b/list.txt").list_file == "gs://b/list.txt"
    assert batch_predict.mask_name("gs://b/photos/2023/x/a.jpg", "gs://b/photos/2023/") == \
        "x/a.jpg.mask.png"
    assert batch_predict.common_folder("/a/b/c/", "/a/b/d/e/") == "/a/b/"
    assert batch_predict.common_folder("gs://b/x/", "/a/") == ""
