"""Bad input gets a clear result and loses nothing that is good (real TFRecords built here)."""
import glob
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx import v1 as tfx

import local_runner
from components.example_quarantine import ExampleQuarantine, check_example
from hostile_images import png_bomb
from model_code.config import SMOKE
from pipeline import beam_options
from pipeline.pipeline import import_example_gen


def _png(array, mode=None):
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def _example(name, image=b"default", mask=b"default", drop=()):
    rgb = np.full((30, 40, 3), 120, np.uint8)
    trimap = np.full((30, 40), 2, np.uint8)
    trimap[10:20, 10:30] = 1
    features = {
        "image": _png(rgb) if image == b"default" else image,
        "segmentation_mask": _png(trimap) if mask == b"default" else mask,
        "file_name": f"{name}.jpg".encode(),
    }
    example = tf.train.Example()
    for key, value in features.items():
        if key not in drop:
            example.features.feature[key].bytes_list.value.append(value)
    example.features.feature["label"].int64_list.value.append(1)
    return example.SerializeToString()


BAD_CASES = {
    "undecodable": (dict(image=b"\xff\xd8 not really a jpeg"), "undecodable image"),
    "empty_image": (dict(image=b""), "empty image"),
    "huge_image": (dict(image=png_bomb(13000)),
                   "image of 13000x13000 pixels over the limit of 120 megapixels"),
    "mask_values": (dict(mask=_png(np.full((30, 40), 7, np.uint8))), "mask values outside"),
    "mask_size": (dict(mask=_png(np.full((15, 20), 2, np.uint8))), "mask size 20x15 differs"),
    "no_image": (dict(drop=("image",)), "missing image"),
    "no_mask": (dict(drop=("segmentation_mask",)), "missing segmentation_mask"),
}


def test_good_example_passes():
    assert check_example(_example("good")) is None


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_bad_case_gets_its_reason(case):
    kwargs, reason = BAD_CASES[case]
    assert check_example(_example(case, **kwargs)).startswith(reason)


def _write_records(folder, records):
    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, "pets.tfrecord-00000-of-00001")) as writer:
        for record in records:
            writer.write(record)
    return str(folder)


def _quarantine_run(data_root, out, max_bad_fraction):
    example_gen = import_example_gen(data_root, SMOKE)
    quarantine = ExampleQuarantine(examples=example_gen.outputs["examples"],
                                   max_bad_fraction=max_bad_fraction)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="quarantine-test", pipeline_root=str(out / "root"),
        components=[example_gen, quarantine],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(out / "metadata.sqlite")),
        beam_pipeline_args=beam_options.direct_runner_args("in_memory")))
    return out / "root" / "ExampleQuarantine"


def _read(pattern):
    files = glob.glob(pattern)
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_bad_examples_are_quarantined_and_good_ones_go_on(tmp_path):
    good = [_example(f"good_{i}") for i in range(60)]
    bad = [_example(case, **kwargs) for case, (kwargs, _) in sorted(BAD_CASES.items())]
    data_root = _write_records(tmp_path / "data", good + bad)
    outputs = _quarantine_run(data_root, tmp_path, max_bad_fraction=0.2)

    clean = _read(str(outputs / "clean_examples" / "*" / "Split-*" / "*.gz"))
    assert sorted(e.features.feature["file_name"].bytes_list.value[0] for e in clean) == \
        sorted(f"good_{i}.jpg".encode() for i in range(60))
    held = _read(str(outputs / "quarantine" / "*" / "Split-*" / "*.gz"))
    reasons = {e.features.feature["file_name"].bytes_list.value[0].decode():
               e.features.feature["quarantine_reason"].bytes_list.value[0].decode()
               for e in held}
    assert {name: reason for name, reason in reasons.items()} .keys() == \
        {f"{case}.jpg" for case in BAD_CASES}
    for case, (_, reason) in BAD_CASES.items():
        assert reasons[f"{case}.jpg"].startswith(reason)
    summary_path = glob.glob(str(outputs / "quarantine" / "*" / "summary.json"))[0]
    summary = json.load(open(summary_path))
    assert (summary["checked"], summary["quarantined"]) == (60 + len(BAD_CASES), len(BAD_CASES))
    assert summary["reasons"]["undecodable image"] == 1
    assert summary["reasons"]["image over the size limit"] == 1
    assert summary["reasons"]["mask size differs from image size"] == 1


def test_too_many_bad_examples_stop_the_run_with_the_counts(tmp_path):
    records = [_example(f"good_{i}") for i in range(30)] + [
        _example(f"broken_{i}", image=b"garbage") for i in range(5)]
    data_root = _write_records(tmp_path / "data", records)
    with pytest.raises(Exception, match=r"quarantined 5 of 35 examples \(14\.3 % > limit "
                                        r"1\.0 %\): undecodable image: 5"):
        _quarantine_run(data_root, tmp_path, max_bad_fraction=0.01)


def test_the_runner_ends_too_many_bad_examples_with_one_line_and_exit_2(tmp_path, capfd):
    import local_runner

    records = [_example(f"good_{i}") for i in range(30)] + [
        _example(f"broken_{i}", image=b"garbage") for i in range(5)]
    data_root = _write_records(tmp_path / "data", records)
    code = local_runner.main(["--preset", "smoke", "--data-dir", data_root,
                              "--pipeline-root", str(tmp_path / "root"),
                              "--metadata-path", str(tmp_path / "metadata.sqlite")])
    assert code == 2
    err = capfd.readouterr().err
    assert "error: ExampleQuarantine: quarantined 5 of 35 examples" in err
    assert "Traceback" not in err


def test_a_split_left_empty_stops_the_run(tmp_path):
    records = [_example(f"broken_{i}", image=b"garbage") for i in range(12)]
    data_root = _write_records(tmp_path / "data", records)
    with pytest.raises(Exception, match=r"no usable example left in split\(s\)"):
        _quarantine_run(data_root, tmp_path, max_bad_fraction=1.0)


@pytest.mark.parametrize("make, message", [
    ("no_records", "no TFRecord files"),
    ("wrong_schema", "examples lack image, segmentation_mask (found: label, text)"),
    ("truncated", "truncated or corrupt TFRecord file after"),
    ("not_examples", "examples lack image, segmentation_mask (found: no features)"),
])
def test_bad_data_dirs_fail_before_any_heavy_work(tmp_path, capsys, make, message):
    folder = tmp_path / "data"
    folder.mkdir()
    if make == "wrong_schema":
        example = tf.train.Example()
        example.features.feature["text"].bytes_list.value.append(b"hello")
        example.features.feature["label"].int64_list.value.append(1)
        _write_records(folder, [example.SerializeToString()])
    elif make == "truncated":
        path = _write_records(folder, [_example(f"good_{i}") for i in range(5)])
        record_file = os.path.join(path, "pets.tfrecord-00000-of-00001")
        data = open(record_file, "rb").read()
        open(record_file, "wb").write(data[:-40])
    elif make == "not_examples":
        _write_records(folder, [b"\x08\x96\x01 definitely not an example \xff\xff"])
    code = local_runner.main(["--preset", "smoke", "--data-dir", str(folder),
                              "--pipeline-root", str(tmp_path / "root")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and str(folder) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "smoke", "--epochs", "0"], "--epochs must be from 1 to 100,000, got 0"),
])
def test_settings_that_cannot_work_end_in_one_line_and_exit_2(argv, message, capsys):
    import local_runner

    assert local_runner.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"


def test_predict_without_a_model_in_the_serving_dir_exits_2(tmp_path, capsys):
    from model_code import predict

    (tmp_path / "serving").mkdir()
    assert predict.main(["--model", str(tmp_path / "serving"), "x.jpg", "--out",
                         str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("error: --model") and "no SavedModel" in err
