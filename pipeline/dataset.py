"""Getting Oxford-IIIT Pet TFRecords onto disk, exactly as TensorFlow Datasets writes them.

Three ways in, one output (`<data_dir>/oxford_iiit_pet/4.0.0/oxford_iiit_pet-{train,test}.tfrecord-*`):
  * online:   TFDS downloads and prepares the real dataset (`--source tfds`);
  * offline:  the two official archives, `images.tar.gz` and `annotations.tar.gz`, already on disk
              (`--source archives --archives DIR`): TFDS's own builder extracts and serialises
              them through its manual-download path;
  * synthetic: archives of synthetic pets (`pipeline.synthetic_pets`) go through that same offline
              path, so tests and the offline default run read real TFDS serialisation.

    python -m pipeline.dataset --data-dir data/real --source tfds
    python -m pipeline.dataset --data-dir data/real --source archives --archives ~/Downloads
    python -m pipeline.dataset --data-dir data/synthetic --source synthetic --num-examples 1000
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import shutil
import sys
from typing import Optional

TFDS_NAME = "oxford_iiit_pet"
TFDS_VERSION = "4.0.0"
TFRECORD_PATTERN = "*.tfrecord*"
ARCHIVES = ("images", "annotations")


class DataDirError(ValueError):
    """A --data-dir that holds no usable TFRecords."""


def version_dir(data_dir: str) -> str:
    return os.path.join(data_dir, TFDS_NAME, TFDS_VERSION)


def find_tfrecord_dir(path: str) -> str:
    """Returns the folder of TFRecords under `path`: a TFDS data_dir, its 4.0.0 folder, or any
    folder of TFRecords. Raises DataDirError naming the path and what is missing."""
    if not os.path.isdir(path):
        raise DataDirError(f"--data-dir {path}: no such directory")
    for candidate in (path, version_dir(path)):
        if glob.glob(os.path.join(candidate, TFRECORD_PATTERN)):
            return os.path.abspath(candidate)
    raise DataDirError(
        f"--data-dir {path}: no TFRecord files ({TFRECORD_PATTERN}) in it or in "
        f"{os.path.join(TFDS_NAME, TFDS_VERSION)}/ below it; prepare data with "
        "`python -m pipeline.dataset` (see README)")


REQUIRED_FEATURES = ("image", "segmentation_mask")


def check_tfrecords(folder: str) -> int:
    """Reads every record under `folder` once, before any heavy work; returns the count.

    Raises DataDirError naming the file when one is truncated or corrupt, or when the records are
    not tf.Examples with the Oxford-Pets `image` and `segmentation_mask` features.
    """
    import tensorflow as tf

    total = 0
    for path in sorted(glob.glob(os.path.join(folder, TFRECORD_PATTERN))):
        count = 0
        try:
            for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)):
                if total == 0 and count == 0:
                    _check_schema(path, record.numpy())
                count += 1
        except tf.errors.DataLossError:
            raise DataDirError(f"{path}: truncated or corrupt TFRecord file after {count} good "
                               "records; re-create it (e.g. with `python -m pipeline.dataset`) "
                               "or move it out of the data folder") from None
        total += count
    if total == 0:
        raise DataDirError(f"--data-dir {folder}: the TFRecord files hold no records")
    return total


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def _check_schema(path: str, record: bytes) -> None:
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(record)
    except Exception:  # noqa: BLE001 - protobuf raises several types for garbage
        raise DataDirError(f"{path}: records are not tf.train.Example protos") from None
    present = set(example.features.feature)
    missing = [key for key in REQUIRED_FEATURES if key not in present]
    if missing:
        raise DataDirError(
            f"{path}: examples lack {', '.join(missing)} (found: "
            f"{', '.join(sorted(present)) or 'no features'}); expected Oxford-IIIT Pet records "
            "as TFDS writes them")


def _archives_builder_class():
    """TFDS's own oxford_iiit_pet builder, fed from local archives instead of the internet."""
    import tensorflow_datasets as tfds

    base = tfds.builder_cls(TFDS_NAME)

    class OxfordPetsFromArchives(base, skip_registration=True):
        name = TFDS_NAME
        MANUAL_DOWNLOAD_INSTRUCTIONS = (
            "Place the official images.tar.gz and annotations.tar.gz from "
            "https://www.robots.ox.ac.uk/~vgg/data/pets/ in the manual directory.")

        def _split_generators(self, dl_manager):
            archives = {key: os.path.join(dl_manager.manual_dir, f"{key}.tar.gz")
                        for key in ARCHIVES}

            class LocalArchives:
                """Answers the base builder's download request with the local archives."""

                @staticmethod
                def download_and_extract(urls):
                    return dl_manager.extract({key: archives[key] for key in urls})

            return super()._split_generators(LocalArchives())

    return OxfordPetsFromArchives


def prepare_from_archives(archive_dir: str, data_dir: str) -> str:
    """Builds TFDS TFRecords from images.tar.gz + annotations.tar.gz in `archive_dir`."""
    import tensorflow_datasets as tfds

    missing = [f"{key}.tar.gz" for key in ARCHIVES
               if not os.path.isfile(os.path.join(archive_dir, f"{key}.tar.gz"))]
    if missing:
        raise DataDirError(f"--archives {archive_dir}: missing {', '.join(missing)}")
    tfds.disable_progress_bar()
    builder = _archives_builder_class()(data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=archive_dir,
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    return version_dir(data_dir)


def prepare_online(data_dir: str) -> str:
    """Downloads and prepares the real dataset with TFDS (needs internet)."""
    import tensorflow_datasets as tfds

    tfds.builder(f"{TFDS_NAME}:{TFDS_VERSION}", data_dir=data_dir).download_and_prepare()
    return version_dir(data_dir)


def prepare_synthetic(data_dir: str, num_examples: int, seed: int = 0) -> str:
    """Writes synthetic archives under `<data_dir>/archives` and prepares them through TFDS."""
    from pipeline import synthetic_pets

    archive_dir = os.path.join(data_dir, "archives")
    synthetic_pets.write_archives(archive_dir, num_examples, seed=seed)
    # TFDS prints "Downloading and preparing dataset Unknown size ..." unconditionally; nothing
    # is downloaded here, so that line would only mislead.
    with contextlib.redirect_stdout(io.StringIO()):
        out = prepare_from_archives(archive_dir, data_dir)
    shutil.rmtree(os.path.join(data_dir, "downloads"), ignore_errors=True)  # TFDS's extractions
    return out


def ensure_synthetic(data_dir: str, num_examples: int, seed: int = 0) -> str:
    """The synthetic dataset's TFRecord folder, created first if it is not there yet."""
    try:
        return find_tfrecord_dir(data_dir)
    except DataDirError:
        print(f"Writing {num_examples} synthetic pets to {data_dir} (TFDS format) ...", flush=True)
        prepare_synthetic(data_dir, num_examples, seed)
        return find_tfrecord_dir(data_dir)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="TFDS data_dir to write into")
    parser.add_argument("--source", choices=["tfds", "archives", "synthetic"], required=True)
    parser.add_argument("--archives", help="folder holding images.tar.gz and annotations.tar.gz")
    parser.add_argument("--num-examples", type=int, default=1000, help="synthetic pets to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.source == "tfds":
            out = prepare_online(args.data_dir)
        elif args.source == "archives":
            if not args.archives:
                parser.error("--source archives needs --archives DIR")
            out = prepare_from_archives(args.archives, args.data_dir)
        else:
            out = prepare_synthetic(args.data_dir, args.num_examples, args.seed)
    except DataDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"TFRecords ready in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
