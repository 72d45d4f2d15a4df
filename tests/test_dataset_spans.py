"""The synthetic span layout for continuous training (issue 18): `python -m pipeline.dataset
--span N / --spans K [--cat-share F]` writes `span-N/oxford_iiit_pet/4.0.0/` TFDS data_dirs."""
import glob
import os
import subprocess
import sys
import tarfile

import pytest

from model_code.labels import BREEDS, SPECIES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_SPAN = 12


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline.dataset", *args], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=300)


def read_span(data_dir, span):
    """[(file_name, label, species)] of every record in span-N (TFDS: species 0 = Cat, 1 = Dog)."""
    import tensorflow as tf

    rows = []
    pattern = os.path.join(data_dir, f"span-{span}", "oxford_iiit_pet", "4.0.0", "*.tfrecord*")
    for path in sorted(glob.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append((feature["file_name"].bytes_list.value[0].decode(),
                         feature["label"].int64_list.value[0],
                         feature["species"].int64_list.value[0]))
    return rows


@pytest.fixture(scope="module")
def two_spans(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("spans"))
    done = run_cli("--data-dir", data_dir, "--source", "synthetic", "--spans", "2",
                   "--num-examples", str(PER_SPAN))
    assert done.returncode == 0, done.stderr[-3000:]
    return data_dir, done.stdout


def test_spans_layout_holds_only_tfds_output(two_spans):
    data_dir, stdout = two_spans
    assert sorted(os.listdir(data_dir)) == ["span-1", "span-2"]  # no staging folder left behind
    for span in (1, 2):
        folder = os.path.join(data_dir, f"span-{span}")
        assert os.listdir(folder) == ["oxford_iiit_pet"]  # no archives/ or downloads/
        version = os.path.join(folder, "oxford_iiit_pet", "4.0.0")
        files = os.listdir(version)
        for split in ("train", "test"):
            assert any(name.startswith(f"oxford_iiit_pet-{split}.tfrecord-") for name in files)
        assert {"dataset_info.json", "features.json"} <= set(files)
        assert f"span-{span}: {PER_SPAN} synthetic pets (" in stdout
        assert f"in {version}" in stdout
    assert len(stdout.strip().splitlines()) == 2


def test_file_names_are_distinct_across_spans_and_labels_match_names(two_spans):
    data_dir, _ = two_spans
    names = {}
    for span in (1, 2):
        rows = read_span(data_dir, span)
        assert len(rows) == PER_SPAN
        names[span] = {name for name, _, _ in rows}
        assert len(names[span]) == PER_SPAN
        for name, label, species in rows:
            breed, number = name[:-len(".jpg")].rsplit("_", 1)
            assert breed == BREEDS[label]  # the name still reads `{breed}_{number}`
            assert span * 100000 < int(number) <= span * 100000 + PER_SPAN
            assert SPECIES[species] == ("Cat" if breed[0].isupper() else "Dog")
    assert not names[1] & names[2]


def test_last_span_is_shifted_to_ninety_percent_cats(two_spans):
    data_dir, stdout = two_spans
    cats = sum(species == 0 for _, _, species in read_span(data_dir, 2))
    assert cats == round(0.9 * PER_SPAN)  # 11 of 12
    assert "span-2: 12 synthetic pets (92 % cats)" in stdout
    first = read_span(data_dir, 1)  # span-1 keeps the default mix: breeds drawn uniformly
    assert sum(species == 0 for _, _, species in first) < round(0.9 * PER_SPAN)


def test_rewriting_a_span_is_refused_with_one_error_line(two_spans):
    data_dir, _ = two_spans
    before = {path: os.path.getmtime(path)
              for path in glob.glob(os.path.join(data_dir, "span-2", "**"), recursive=True)}
    for args in (["--span", "2"], ["--spans", "2"]):
        done = run_cli("--data-dir", data_dir, "--source", "synthetic", *args,
                       "--num-examples", str(PER_SPAN))
        assert done.returncode == 2
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "already exists in" in errors[0] and "use the next number (span-3)" in errors[0]
        assert done.stdout == ""
    after = {path: os.path.getmtime(path)
             for path in glob.glob(os.path.join(data_dir, "span-2", "**"), recursive=True)}
    assert after == before
    assert sorted(os.listdir(data_dir)) == ["span-1", "span-2"]


def test_single_span_with_cat_share(tmp_path):
    done = run_cli("--data-dir", str(tmp_path), "--source", "synthetic", "--span", "3",
                   "--num-examples", str(PER_SPAN), "--cat-share", "0.25")
    assert done.returncode == 0, done.stderr[-3000:]
    assert os.listdir(tmp_path) == ["span-3"]
    rows = read_span(str(tmp_path), 3)
    assert sum(species == 0 for _, _, species in rows) == 3
    assert done.stdout.strip() == (f"span-3: 12 synthetic pets (25 % cats) in "
                                   f"{tmp_path}/span-3/oxford_iiit_pet/4.0.0")


@pytest.mark.parametrize("args", [
    ["--span", "1", "--spans", "2"],
    ["--span", "0"],
    ["--spans", "-1"],
    ["--span", "1", "--cat-share", "1.5"],
    ["--span", "1", "--cat-share", "0"],
    ["--cat-share", "0.5"],
])
def test_bad_span_arguments_exit_2(tmp_path, args):
    done = run_cli("--data-dir", str(tmp_path), "--source", "synthetic", "--num-examples", "4",
                   *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []


def test_span_needs_synthetic_source(tmp_path):
    done = run_cli("--data-dir", str(tmp_path), "--source", "tfds", "--span", "1")
    assert done.returncode == 2 and "--source synthetic" in done.stderr


def test_default_synthetic_mix_is_unchanged(tmp_path):
    """The default breed draws for a seed are what they were before spans existed."""
    from pipeline import synthetic_pets

    synthetic_pets.write_archives(str(tmp_path), 8, seed=1)
    with tarfile.open(tmp_path / "annotations.tar.gz") as tar:
        trainval = tar.extractfile("annotations/trainval.txt").read().decode()
        test = tar.extractfile("annotations/test.txt").read().decode()
    assert trainval == ("japanese_chin_1 18 2 18\nshiba_inu_3 32 2 32\nAbyssinian_5 1 1 1\n"
                        "Sphynx_7 34 1 34\n")
    assert test == ("keeshond_2 19 2 19\nyorkshire_terrier_4 37 2 37\n"
                    "english_cocker_spaniel_6 13 2 13\nMaine_Coon_8 21 1 21\n")


def test_python_api_writes_spans_and_refuses_before_writing_any(tmp_path):
    from pipeline import dataset

    data_dir = str(tmp_path)
    out = dataset.prepare_synthetic_span(data_dir, 2, 4, seed=5)
    assert out == os.path.join(data_dir, "span-2", "oxford_iiit_pet", "4.0.0")
    with pytest.raises(dataset.DataDirError, match="span-2 already exists"):
        dataset.prepare_synthetic_spans(data_dir, 3, 4)
    assert sorted(os.listdir(data_dir)) == ["span-2"]  # span-1 was not written either
    outs = dataset.prepare_synthetic_spans(str(tmp_path / "fresh"), 2, 4, last_cat_share=0.5)
    assert outs == [os.path.join(str(tmp_path / "fresh"), f"span-{n}", "oxford_iiit_pet", "4.0.0")
                    for n in (1, 2)]
    assert sum(species == 0 for _, _, species in read_span(str(tmp_path / "fresh"), 2)) == 2
