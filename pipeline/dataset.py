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

Span layout, for continuous training (issue 18): `<data_dir>/span-1/`, `span-2/`, ..., each span a
TFDS data_dir of its own (`span-N/oxford_iiit_pet/4.0.0/...`, written through the same builder).
Spans are written once and never rewritten; `--num-examples` counts per span, span N uses seed
`--seed + N` and file names numbered from N*100000, so spans never share a `file_name`.
`--cat-share F` sets the share of cats (default: breeds drawn uniformly, about 32 % cats), so a
later span can drift from the earlier ones on `species` and `label`:

    python -m pipeline.dataset --data-dir data/spans --source synthetic --span 1 --num-examples 200
    python -m pipeline.dataset --data-dir data/spans --source synthetic --span 2 --num-examples 200
    python -m pipeline.dataset --data-dir data/spans --source synthetic --span 3 \\
        --num-examples 200 --cat-share 0.9
    python -m pipeline.dataset --data-dir data/spans --source synthetic --spans 3 --num-examples 200

`--spans K` writes span-1..span-K in one go; its last span has 90 % cats (or `--cat-share`)
unless K is 1.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import shutil
import sys
import uuid
from typing import Optional

from pipeline import console

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


SPAN_PREFIX = "span-"
SPAN_NAME_OFFSET = 100000  # span N numbers its file names from N * SPAN_NAME_OFFSET + 1
DEFAULT_LAST_CAT_SHARE = 0.9


def span_dir(data_dir: str, span: int) -> str:
    return os.path.join(data_dir, f"{SPAN_PREFIX}{span}")


def _span_has_tfrecords(folder: str) -> bool:
    return bool(glob.glob(os.path.join(folder, "**", TFRECORD_PATTERN), recursive=True))


def _existing_spans(data_dir: str) -> list:
    spans = []
    for path in glob.glob(os.path.join(data_dir, f"{SPAN_PREFIX}*")):
        number = os.path.basename(path)[len(SPAN_PREFIX):]
        if number.isdigit() and _span_has_tfrecords(path):
            spans.append(int(number))
    return sorted(spans)


def _refuse_existing_span(data_dir: str, span: int) -> None:
    folder = span_dir(data_dir, span)
    if _span_has_tfrecords(folder):
        next_span = max(_existing_spans(data_dir) + [span]) + 1
        raise DataDirError(
            f"{SPAN_PREFIX}{span} already exists in {data_dir}; spans are written once — use the "
            f"next number ({SPAN_PREFIX}{next_span})")
    if os.path.isdir(folder) and os.listdir(folder):
        raise DataDirError(
            f"{folder} exists but holds no TFRecords (an interrupted write?); remove it and "
            "write the span again")


def _check_span_args(span: int, num_examples: int, cat_share: Optional[float]) -> None:
    if not isinstance(span, int) or span < 1:
        raise DataDirError(f"span must be a positive integer, not {span!r}")
    if not 2 <= num_examples < SPAN_NAME_OFFSET:
        raise DataDirError(f"--num-examples must lie in 2..{SPAN_NAME_OFFSET - 1} per span "
                           f"(file names of span N are numbered from N*{SPAN_NAME_OFFSET}), "
                           f"not {num_examples}")
    if cat_share is not None and not 0 < cat_share < 1:
        raise DataDirError(f"--cat-share must lie strictly between 0 and 1, not {cat_share}")


def _species_counts(folder: str) -> tuple:
    """(records, cats) under `folder`; TFDS encodes `species` as 0 = Cat, 1 = Dog."""
    import tensorflow as tf

    total = cats = 0
    for path in glob.glob(os.path.join(folder, TFRECORD_PATTERN)):
        for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)):
            example = tf.train.Example.FromString(record.numpy())
            cats += example.features.feature["species"].int64_list.value[0] == 0
            total += 1
    return total, cats


def prepare_synthetic_span(data_dir: str, span: int, num_examples: int, seed: int = 0,
                           cat_share: Optional[float] = None) -> str:
    """Writes `<data_dir>/span-<span>/`, a TFDS data_dir of `num_examples` synthetic pets.

    Span N uses seed `seed + N` and file names `{breed}_{N*100000 + i}`. With `cat_share`, that
    share of the pets are cats (breed drawn within the species); without, the default mix. The
    span is built in a hidden folder next to it and renamed into place when complete, so
    `span-N/` appears whole or not at all; it holds only `oxford_iiit_pet/`. Raises DataDirError
    if the span already holds TFRecords (spans are immutable). Returns its 4.0.0 folder.
    """
    from pipeline import synthetic_pets

    _check_span_args(span, num_examples, cat_share)
    _refuse_existing_span(data_dir, span)
    final = span_dir(data_dir, span)
    staging = os.path.join(data_dir, f".{SPAN_PREFIX}{span}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    os.makedirs(staging)
    try:
        archive_dir = os.path.join(staging, "archives")
        synthetic_pets.write_archives(archive_dir, num_examples, seed=seed + span,
                                      cat_share=cat_share, name_offset=span * SPAN_NAME_OFFSET)
        with contextlib.redirect_stdout(io.StringIO()):  # see prepare_synthetic
            prepare_from_archives(archive_dir, staging)
        shutil.rmtree(archive_dir)
        shutil.rmtree(os.path.join(staging, "downloads"), ignore_errors=True)
        try:
            os.rename(staging, final)  # replaces an empty span-N/, never a written one
        except OSError as err:
            _refuse_existing_span(data_dir, span)  # another writer got there first
            raise DataDirError(f"could not move the new span into {final}: {err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version_dir(final)


def prepare_synthetic_spans(data_dir: str, num_spans: int, num_examples: int, seed: int = 0,
                            last_cat_share: Optional[float] = DEFAULT_LAST_CAT_SHARE) -> list:
    """Writes span-1..span-`num_spans` (see prepare_synthetic_span); the last span has
    `last_cat_share` cats unless `num_spans` is 1 (then it keeps the default mix). Refuses before
    writing anything if any of them exists. Returns the spans' 4.0.0 folders."""
    return [prepare_synthetic_span(data_dir, span, num_examples, seed, cat_share)
            for span, cat_share in _plan_spans(data_dir, num_spans, num_examples, last_cat_share)]


def _plan_spans(data_dir: str, num_spans: int, num_examples: int,
                last_cat_share: Optional[float]) -> list:
    """[(span, cat_share)] for span-1..span-`num_spans`, checked before anything is written."""
    if not isinstance(num_spans, int) or num_spans < 1:
        raise DataDirError(f"--spans must be a positive integer, not {num_spans!r}")
    plan = []
    for span in range(1, num_spans + 1):
        cat_share = last_cat_share if num_spans > 1 and span == num_spans else None
        _check_span_args(span, num_examples, cat_share)
        _refuse_existing_span(data_dir, span)
        plan.append((span, cat_share))
    return plan


def _span_line(span: int, out: str) -> str:
    total, cats = _species_counts(out)
    return (f"{SPAN_PREFIX}{span}: {total} synthetic pets ({100 * cats / total:.0f} % cats) "
            f"in {out}")


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
    parser.add_argument("--num-examples", type=int, default=1000,
                        help="synthetic pets to write (per span with --span/--spans)")
    parser.add_argument("--seed", type=int, default=0)
    spans = parser.add_mutually_exclusive_group()
    spans.add_argument("--span", type=int, metavar="N",
                       help="with --source synthetic: write only <data-dir>/span-N/ (once)")
    spans.add_argument("--spans", type=int, metavar="K",
                       help="with --source synthetic: write span-1..span-K; the last one shifted "
                            f"to {100 * DEFAULT_LAST_CAT_SHARE:.0f}%% cats unless K is 1")
    parser.add_argument("--cat-share", type=float, metavar="F",
                        help="share of cats (0 < F < 1) in the span written by --span, or in the "
                             "last span of --spans")
    args = parser.parse_args(argv)
    console.quiet()  # before TensorFlow is imported: its start-up log is not for this command
    span_mode = args.span is not None or args.spans is not None
    if span_mode and args.source != "synthetic":
        parser.error("--span/--spans need --source synthetic")
    if args.cat_share is not None and not span_mode:
        parser.error("--cat-share needs --span or --spans")
    if args.span is not None and args.span < 1:
        parser.error(f"--span must be a positive integer, not {args.span}")
    if args.spans is not None and args.spans < 1:
        parser.error(f"--spans must be a positive integer, not {args.spans}")
    if args.cat_share is not None and not 0 < args.cat_share < 1:
        parser.error(f"--cat-share must lie strictly between 0 and 1, not {args.cat_share}")
    try:
        if span_mode:
            if args.span is not None:
                plan = [(args.span, args.cat_share)]
            elif args.spans == 1:  # a single span shifts only when asked to
                plan = [(1, args.cat_share)]
            else:
                plan = _plan_spans(args.data_dir, args.spans, args.num_examples,
                                   DEFAULT_LAST_CAT_SHARE if args.cat_share is None
                                   else args.cat_share)
            for span, cat_share in plan:
                out = prepare_synthetic_span(args.data_dir, span, args.num_examples, args.seed,
                                             cat_share)
                print(_span_line(span, out), flush=True)
            return 0
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
