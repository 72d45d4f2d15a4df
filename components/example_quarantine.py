"""ExampleQuarantine: checks every example before Transform and sets bad ones aside.

Real Oxford-Pets data, and users' own TFRecords, hold undecodable, empty or huge images, masks with
values outside the trimap's {1, 2, 3}, masks whose size differs from their image, and examples
without an image or mask. Transform would crash on them deep inside Beam, or train on garbage.
This component decodes each example the way Transform will (3-channel image, 1-channel PNG mask)
and writes:
  * clean_examples: the good examples, same splits, same format as ExampleGen's output;
  * quarantine:     the bad ones, each with a `quarantine_reason` feature (and its file_name),
                    plus summary.json with counts per split and reason.
It fails, with a message naming the counts and reasons, when a split has no good example left or
the bad share exceeds `max_bad_fraction`.

TFDV's ExampleValidator only sees statistics and cannot decode images or drop single examples, so
this is hand-written; it is an ordinary TFX Python-function component running on Beam.
"""

import json
import os
from typing import Dict, List, Optional, Tuple

import apache_beam as beam
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from pets_unet import Quarantine

IMAGE_KEY = "image"
MASK_KEY = "segmentation_mask"
FILE_NAME_KEY = "file_name"
REASON_KEY = "quarantine_reason"
VALID_MASK_VALUES = frozenset({1, 2, 3})
SUMMARY_FILE = "summary.json"


class DataQualityError(ValueError):
    """The data cannot be trained on; the message says why and where the bad examples are."""


def check_example(serialized: bytes) -> Optional[str]:
    """None for a usable example, else a short reason (one of a few fixed phrases + detail)."""
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # noqa: BLE001 - any parse failure means the same thing here
        return "not a tf.train.Example"
    features = example.features.feature
    for key in (IMAGE_KEY, MASK_KEY):
        if key not in features or not features[key].bytes_list.value:
            return f"missing {key}"
    image_bytes = features[IMAGE_KEY].bytes_list.value[0]
    mask_bytes = features[MASK_KEY].bytes_list.value[0]
    if not image_bytes:
        return "empty image"
    from model_code.config import DEFAULT_MAX_IMAGE_PIXELS
    from model_code.image_input import header_size

    try:  # from the header, before a decompression bomb is decoded
        height, width = (int(v) for v in header_size(image_bytes).numpy())
    except tf.errors.InvalidArgumentError:
        return "undecodable image"
    if height * width > DEFAULT_MAX_IMAGE_PIXELS:
        return (f"image of {width}x{height} pixels over the limit of "
                f"{DEFAULT_MAX_IMAGE_PIXELS / 1e6:g} megapixels")
    try:
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        return "undecodable image"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return "empty image"
    try:
        mask = tf.io.decode_png(mask_bytes, channels=1)
    except (tf.errors.InvalidArgumentError, ValueError):
        return "undecodable mask"
    if tuple(mask.shape[:2]) != tuple(image.shape[:2]):
        return (f"mask size {mask.shape[1]}x{mask.shape[0]} differs from image size "
                f"{image.shape[1]}x{image.shape[0]}")
    values = set(int(v) for v in tf.unique(tf.reshape(mask, [-1]))[0].numpy())
    if not values <= VALID_MASK_VALUES:
        return f"mask values outside {{1,2,3}}: {sorted(values - VALID_MASK_VALUES)[:5]}"
    return None


def reason_category(reason: str) -> str:
    """Groups detailed reasons ("mask size 3x4 differs ...") into countable categories."""
    if reason.startswith("mask size"):
        return "mask size differs from image size"
    if reason.startswith("mask values outside"):
        return "mask values outside {1,2,3}"
    if reason.startswith("image of "):
        return "image over the size limit"
    return reason


class _Check(beam.DoFn):
    BAD = "bad"

    def process(self, serialized: bytes):
        reason = check_example(serialized)
        if reason is None:
            yield serialized
        else:
            yield beam.pvalue.TaggedOutput(self.BAD, _with_reason(serialized, reason))


def _with_reason(serialized: bytes, reason: str) -> bytes:
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # noqa: BLE001
        example = tf.train.Example()
        example.features.feature["raw_record"].bytes_list.value.append(serialized)
    example.features.feature[REASON_KEY].bytes_list.value[:] = [reason.encode()]
    return example.SerializeToString()


def _reason_of(serialized: bytes) -> str:
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    return reason_category(example.features.feature[REASON_KEY].bytes_list.value[0].decode())


def summarize(counts: Dict[str, Dict[str, int]], max_bad_fraction: float
              ) -> Tuple[dict, Optional[str]]:
    """Totals and, when the run must stop, the message saying why."""
    checked = sum(c["checked"] for c in counts.values())
    bad = sum(c["quarantined"] for c in counts.values())
    reasons: Dict[str, int] = {}
    for c in counts.values():
        for reason, n in c["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    summary = {"checked": checked, "quarantined": bad, "reasons": reasons, "splits": counts,
               "max_bad_fraction": max_bad_fraction}
    detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items()))
    empty = [split for split, c in counts.items() if c["checked"] - c["quarantined"] == 0]
    if checked == 0:
        return summary, "no examples at all in the input"
    if empty:
        return summary, (f"no usable example left in split(s) {', '.join(sorted(empty))} "
                         f"after quarantining {bad} of {checked} ({detail})")
    if bad / checked > max_bad_fraction:
        return summary, (f"quarantined {bad} of {checked} examples ({100 * bad / checked:.1f} % "
                         f"> limit {100 * max_bad_fraction:.1f} %): {detail}")
    return summary, None


@tfx.dsl.components.component(use_beam=True)
def ExampleQuarantine(  # noqa: N802 - TFX component names are classes
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    clean_examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    quarantine: tfx.dsl.components.OutputArtifact[Quarantine],
    max_bad_fraction: tfx.dsl.components.Parameter[float] = 0.01,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    splits: List[str] = artifact_utils.decode_split_names(examples.split_names)
    # Payload format, span, fingerprint: custom properties locally; on Vertex AI and Kubeflow the
    # span comes back as the Examples type's own `span` property.
    for key, value in examples.mlmd_artifact.properties.items():
        clean_examples.mlmd_artifact.properties[key].CopyFrom(value)
    for key, value in examples.mlmd_artifact.custom_properties.items():
        clean_examples.mlmd_artifact.custom_properties[key].CopyFrom(value)
    clean_examples.split_names = examples.split_names
    with beam_pipeline as pipeline:
        for split in splits:
            records = (pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                os.path.join(examples.uri, f"Split-{split}", "*")))
            checked = records | f"Check[{split}]" >> beam.ParDo(_Check()).with_outputs(
                _Check.BAD, main="good")
            clean_dir = os.path.join(clean_examples.uri, f"Split-{split}")
            bad_dir = os.path.join(quarantine.uri, f"Split-{split}")
            _ = checked.good | f"WriteClean[{split}]" >> beam.io.WriteToTFRecord(
                os.path.join(clean_dir, "data_tfrecord"), file_name_suffix=".gz")
            _ = checked.bad | f"WriteBad[{split}]" >> beam.io.WriteToTFRecord(
                os.path.join(bad_dir, "data_tfrecord"), file_name_suffix=".gz")
            counts = (
                (records | f"CountAll[{split}]" >> beam.combiners.Count.Globally()
                 | f"AsChecked[{split}]" >> beam.Map(lambda n: ("checked", n))),
                (checked.bad | f"Reasons[{split}]" >> beam.Map(_reason_of)
                 | f"CountReasons[{split}]" >> beam.combiners.Count.PerElement()))
            _ = (counts | f"Merge[{split}]" >> beam.Flatten()
                 | f"Gather[{split}]" >> beam.combiners.ToList()
                 | f"Json[{split}]" >> beam.Map(lambda pairs: json.dumps(dict(pairs)))
                 | f"WriteCounts[{split}]" >> beam.io.WriteToText(
                     os.path.join(bad_dir, "counts"), file_name_suffix=".json",
                     shard_name_template=""))
    import tensorflow as tf

    counts = {}
    for split in splits:
        with tf.io.gfile.GFile(os.path.join(quarantine.uri, f"Split-{split}", "counts.json")) as f:
            raw = json.load(f)
        checked_n = int(raw.pop("checked", 0))
        counts[split] = {"checked": checked_n, "quarantined": sum(raw.values()), "reasons": raw}
    summary, failure = summarize(counts, max_bad_fraction)
    with tf.io.gfile.GFile(os.path.join(quarantine.uri, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    clean_examples.set_int_custom_property("num_checked", summary["checked"])
    clean_examples.set_int_custom_property("num_quarantined", summary["quarantined"])
    quarantine.set_int_custom_property("num_checked", summary["checked"])
    quarantine.set_int_custom_property("num_quarantined", summary["quarantined"])
    quarantine.set_string_custom_property("reasons", json.dumps(summary["reasons"]))
    if failure:
        raise DataQualityError(f"ExampleQuarantine: {failure}; the bad examples and their "
                               f"reasons are in {quarantine.uri}")
