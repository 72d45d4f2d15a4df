"""SpanWindow: remembers each ingested span, checks the new one for drift, and hands the Trainer a window.

Input: the clean examples, statistics and transformed examples of the span this run ingested
(ImportExampleGen put its number on the artifact). The component
  1. compares that span's statistics with the span before it (TFDV's `validate_statistics` with
     Jensen-Shannon drift comparators, thresholds from the configuration);
  2. records the span in the span store, `<span_store>/span-N.json`: where its examples,
     statistics and transformed examples are, its counts, its fingerprint; written whole
     (temporary file + rename);
  3. writes `window`, one Examples artifact holding the transformed examples of the newest
     `window_spans` stored spans up to N (their files copied per split), with `window.json`
     (spans, counts, drift) beside the splits and the same facts as custom properties.

Earlier spans' transformed examples are reused as they are, so Transform only ever sees the new
span. That is sound because model_code.preprocessing has no full-pass analyzers: its graph does
not depend on the data, so every span's examples are transformed alike.

Why by hand: TFX's span windows (a Resolver with SpanRangeStrategy, or RangeConfig's rolling
range) do not compile for Vertex AI or Kubeflow Pipelines (the KFP v2 compiler takes only the
latest-artifact and latest-blessed-model resolvers, and RangeConfig takes one span at a time).
The store is a folder, like the Pusher's serving folder, so it works the same on every runner;
no component reads the orchestrator's metadata store. ExampleValidator never sees a previous
span's statistics, hence the drift check here.
"""

import json
import os
import re
from typing import Dict, List, Optional

from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.report_page import WINDOW_FILE

STATS_SPLIT = "train"


class DriftError(ValueError):
    """The new span drifted beyond the thresholds and the configuration says stop."""


class SpanStoreError(ValueError):
    """A record in the span store cannot be used; the message names it and what to do."""


RECORD_NAME = re.compile(r"^span-([0-9]+)\.json$")


def span_of(artifact) -> int:
    """The span ImportExampleGen recorded: a custom property locally; on Vertex AI and Kubeflow
    it comes back from the step's metadata as the Examples type's own `span` property."""
    mlmd = artifact.mlmd_artifact
    for props in (mlmd.custom_properties, mlmd.properties):
        if "span" in props:
            value = props["span"]
            return int(getattr(value, value.WhichOneof("value")))
    return 0


def _fingerprint(artifact) -> str:
    props = artifact.mlmd_artifact.custom_properties
    return props["input_fingerprint"].string_value if "input_fingerprint" in props else ""


def _write_json(path: str, value) -> None:
    import tensorflow as tf

    staging = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(staging, "w") as f:
        json.dump(value, f, indent=2)
    tf.io.gfile.rename(staging, path, overwrite=True)


def _read_json(path: str):
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _checked_record(path: str, span: int) -> dict:
    try:
        record = _read_json(path)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        problem = f"not JSON: {err}"
    else:
        problem = ("not a record of span " + str(span) if not isinstance(record, dict)
                   or record.get("span") != span else
                   "no folder of transformed examples" if not isinstance(
                       record.get("transformed"), str) else "")
        if not problem:
            return record
    raise SpanStoreError(
        f"the span store's {path} is unreadable ({problem}). It says where span {span}'s "
        f"examples are: restore it from a copy, or delete it to leave span {span} out of "
        "later windows and drift checks")


def stored_spans(store: str) -> Dict[int, dict]:
    """Span number -> its record, for every span in the store; SpanStoreError for a record that
    cannot be used (edited by hand, or written by something else)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(store):
        return {}
    records = {}
    for name in tf.io.gfile.listdir(store):
        match = RECORD_NAME.match(name.rstrip("/"))
        if match:
            span = int(match.group(1))
            records[span] = _checked_record(os.path.join(store, match.group(0)), span)
    return records


def count_records(folder: str) -> int:
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(folder, "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP")) if files else 0


def stats_file(statistics_uri: str) -> str:
    """The train split's statistics in a StatisticsGen artifact's folder."""
    return os.path.join(statistics_uri, f"Split-{STATS_SPLIT}", "FeatureStats.pb")


def drift(current_stats: str, previous_stats: str, thresholds: Dict[str, float]) -> List[dict]:
    """TFDV's drift measurements of the features in `thresholds` between two statistics folders
    (StatisticsGen's artifacts), each as {feature, measure, value, threshold, drifted}."""
    import tensorflow_data_validation as tfdv

    current = tfdv.load_stats_binary(stats_file(current_stats))
    previous = tfdv.load_stats_binary(stats_file(previous_stats))
    schema = tfdv.infer_schema(current)
    known = {feature.name for feature in schema.feature}
    for name, threshold in thresholds.items():
        if name in known:
            tfdv.get_feature(schema, name).drift_comparator.jensen_shannon_divergence.threshold = (
                threshold)
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    found = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            if feature in thresholds and measurement.threshold > 0:
                found.append({"feature": feature, "measure": "Jensen-Shannon divergence",
                              "value": round(measurement.value, 4),
                              "threshold": measurement.threshold,
                              "drifted": measurement.value > measurement.threshold})
    return sorted(found, key=lambda d: d["feature"])


def describe_drift(results: List[dict], span: int, previous: Optional[int]) -> str:
    """One line: "span 3 vs span 2: species 0.31 > 0.05 (drift); label 0.04 <= 0.1"."""
    if previous is None:
        return f"span {span} is the first; nothing to compare it with"
    parts = [f"{d['feature']} {d['value']:.3g} {'>' if d['drifted'] else '<='} {d['threshold']:g}"
             + (" (drift)" if d["drifted"] else "") for d in results]
    return f"span {span} vs span {previous}: " + ("; ".join(parts) or "no features compared")


def copy_window(window_records: List[dict], splits: List[str], out_uri: str) -> Dict[int, dict]:
    """Copies each span's transformed files into `out_uri`/Split-*; returns span -> {split:
    count}."""
    import tensorflow as tf

    counts = {}
    for record in window_records:
        span = int(record["span"])
        for split in splits:
            target = os.path.join(out_uri, f"Split-{split}")
            tf.io.gfile.makedirs(target)
            for path in tf.io.gfile.glob(os.path.join(record["transformed"], f"Split-{split}",
                                                      "*")):
                tf.io.gfile.copy(path, os.path.join(target, f"span-{span}-{os.path.basename(path)}"),
                                 overwrite=True)
        counts[span] = record["counts"]
    return counts


@tfx.dsl.components.component
def SpanWindow(  # noqa: N802 - TFX component names are classes
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    transformed_examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    window: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    span_store: tfx.dsl.components.Parameter[str],
    window_spans: tfx.dsl.components.Parameter[int] = 3,
    drift_thresholds: tfx.dsl.components.Parameter[str] = "{}",
    drift_action: tfx.dsl.components.Parameter[str] = "warn",
) -> None:
    import tensorflow as tf

    span = span_of(examples)
    splits = artifact_utils.decode_split_names(examples.split_names)
    store = stored_spans(span_store)
    # The span before, among those whose statistics are still there (a pruned pipeline root).
    earlier = [s for s in sorted(store, reverse=True) if s < span]
    previous = next((s for s in earlier if tf.io.gfile.exists(stats_file(store[s]["statistics"]))),
                    None)
    for s in earlier[:earlier.index(previous) if previous is not None else len(earlier)]:
        print(f"SpanWindow: span {s}'s statistics are gone from {store[s]['statistics']}; "
              "comparing with an older span", flush=True)
    thresholds = json.loads(drift_thresholds)
    results = drift(statistics.uri, store[previous]["statistics"], thresholds) if (
        previous is not None) else []
    summary = describe_drift(results, span, previous) if previous is not None or not earlier \
        else f"span {span}: no earlier span's statistics left to compare it with"
    if span in store and store[span].get("fingerprint") != _fingerprint(examples):
        print(f"SpanWindow: span {span} changed since a run ingested it (its files' "
              "fingerprint differs)", flush=True)
    print(f"SpanWindow: {summary}", flush=True)
    drifted = [d for d in results if d["drifted"]]
    if drifted and drift_action == "stop":
        raise DriftError(f"SpanWindow: {summary}; with drift_action stop (--on-drift stop, or "
                         "the preset) nothing was trained: check the new span, or run with "
                         "--on-drift warn")

    record = {"span": span, "examples": examples.uri, "statistics": statistics.uri,
              "transformed": transformed_examples.uri, "fingerprint": _fingerprint(examples),
              "counts": {split: count_records(os.path.join(examples.uri, f"Split-{split}"))
                         for split in splits}}
    tf.io.gfile.makedirs(span_store)
    _write_json(os.path.join(span_store, f"span-{span}.json"), record)
    store[span] = record

    # The newest `window_spans` spans up to this one whose transformed examples are still there.
    present = [s for s in sorted(store)
               if s <= span and tf.io.gfile.isdir(store[s].get("transformed", ""))]
    for s in sorted(set(store) - set(present)):
        if s < span:
            print(f"SpanWindow: span {s} left out of the window: its transformed examples are "
                  f"gone from {store[s].get('transformed')}", flush=True)
    chosen = present[-window_spans:]
    counts = copy_window([store[s] for s in chosen], splits, window.uri)
    print(f"SpanWindow: training window spans {', '.join(map(str, chosen))} ("
          + ", ".join(f"span {s}: {c.get('train', 0)} train" for s, c in counts.items()) + ")",
          flush=True)

    window.split_names = transformed_examples.split_names
    for key, value in transformed_examples.mlmd_artifact.custom_properties.items():
        window.mlmd_artifact.custom_properties[key].CopyFrom(value)
    facts = {"span": span, "previous_span": previous, "window": chosen,
             "counts": {str(s): c for s, c in counts.items()}, "drift": results,
             "drift_summary": summary, "drift_action": drift_action,
             "ingested": sorted(store)}
    _write_json(os.path.join(window.uri, WINDOW_FILE), facts)
    window.set_int_custom_property("span", span)
    window.set_string_custom_property("window_spans", json.dumps(chosen))
    window.set_int_custom_property("drifted", len(drifted))
