"""Renders the evaluation report, one self-contained HTML page, from a run's artifact folders.

One HTML file (images inlined), readable offline: the blessing verdict and the thresholds behind
it, the data checks, metrics overall and per species/breed slice, candidate vs baseline, the pixel
confusion matrix, the training curves, and a gallery of test examples (first ones and worst ones
by IoU) in the tutorial's four panels.

Everything comes from artifact folders, never from ML Metadata, so the same code runs inside the
pipeline (components.evaluation_report, on any orchestrator) and after it (pipeline.report):
TFMA's metrics and validation result (`tfma.load_eval_result` / `load_validation_result`), the
blessing's BLESSED / NOT_BLESSED file, ExampleQuarantine's summary.json, the Trainer's TensorBoard
logs, and the candidate model applied to the test split. The gallery's per-example IoU is computed
here, because TFMA reports aggregates only. This module gathers all that into plain values
(formatted numbers, rows, images as PNG data: URIs); the page itself is the Jinja2 template
components/templates/report.html.j2, rendered with autoescaping, so artifact-derived text (file
names, TFMA's messages, the note, URIs) always shows as text.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import io
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from model_code import metrics, precision
from model_code.labels import BREEDS, CLASS_NAMES, SPECIES

GALLERY_SIZE = 6
HEADLINE = (metrics.PIXEL_ACCURACY, metrics.MEAN_IOU)
QUARANTINE_SUMMARY = "summary.json"
WINDOW_FILE = "window.json"  # what components.span_window writes beside the window's splits
TUNER_RESULTS = "tuner_results.json"  # the name TFX's Tuner executor writes its trials under
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
PAGE_TEMPLATE = "report.html.j2"


@dataclasses.dataclass
class ReportInputs:
    """Where a run's artifacts are, and what the orchestrator knows beyond them."""

    evaluation_uri: str
    blessing_uri: Optional[str] = None
    model_uri: Optional[str] = None
    model_run_uri: Optional[str] = None
    examples_uri: Optional[str] = None  # the examples the Evaluator read
    quarantine_uri: Optional[str] = None
    split: str = "test"
    title: str = ""  # e.g. the run id
    pushed: Optional[bool] = None  # None: not known when the report is written
    pushed_destination: Optional[str] = None
    note: str = ""  # said first, e.g. that the data was synthetic
    tuner_results_uri: Optional[str] = None  # the Tuner's trials, when the run was tuned
    window_uri: Optional[str] = None  # SpanWindow's output, for a data folder of spans


# ---------------------------------------------------------------- reading the run's artifacts

def slice_metrics(eval_result) -> Dict[Tuple, Dict[str, float]]:
    """A TFMA EvalResult's numbers: slice key (() or (("species", 1),)) -> metric -> value."""
    out = {}
    for slice_key, by_output in eval_result.slicing_metrics:
        values = {}
        for by_sub_key in by_output.values():  # output name -> sub key -> metric -> value
            for by_name in by_sub_key.values():
                for name, value in by_name.items():
                    if "doubleValue" in value:
                        values[name] = value["doubleValue"]
        out[tuple(slice_key)] = values
    return out


def validation_failures(evaluation_uri: str) -> List[str]:
    """TFMA's reasons for not blessing, one line each."""
    import tensorflow_model_analysis as tfma
    from google.protobuf import text_format

    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            what = "change vs baseline" if key.is_diff else "value"
            threshold = text_format.MessageToString(failure.metric_threshold, as_one_line=True)
            where = ", ".join(f"{k.column}={k.int64_value or k.bytes_value or k.float_value}"
                              for k in per_slice.slice_key.single_slice_keys)
            where = f" [slice {where}]" if where else ""
            failures.append(f"{key.name}{where}: {what} "
                            f"{failure.metric_value.double_value.value:.4f} fails threshold "
                            f"{{{threshold}}}")
    return failures


def read_blessing(blessing_uri: Optional[str]) -> Optional[bool]:
    """The Evaluator's verdict from the marker file it writes (BLESSED or NOT_BLESSED)."""
    import tensorflow as tf

    if not blessing_uri:
        return None
    if tf.io.gfile.exists(os.path.join(blessing_uri, "BLESSED")):
        return True
    if tf.io.gfile.exists(os.path.join(blessing_uri, "NOT_BLESSED")):
        return False
    return None


def read_data_checks(quarantine_uri: Optional[str]) -> Optional[dict]:
    """ExampleQuarantine's counts (checked, quarantined, reasons) and where the bad ones are."""
    import tensorflow as tf

    path = os.path.join(quarantine_uri or "", QUARANTINE_SUMMARY)
    if not quarantine_uri or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        summary = json.load(f)
    return {"checked": summary["checked"], "quarantined": summary["quarantined"],
            "reasons": summary["reasons"], "uri": quarantine_uri}


def _artifact_json(uri: Optional[str], name: str):
    """The JSON file `name` in an artifact's folder, or None when there is none."""
    import tensorflow as tf

    path = os.path.join(uri or "", name)
    if not uri or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_tuner_results(tuner_results_uri: Optional[str]) -> Optional[List[dict]]:
    """The Tuner's completed trials, best first: {"trial_id", "score", <hyperparameters>}."""
    return _artifact_json(tuner_results_uri, TUNER_RESULTS)


def read_window(window_uri: Optional[str]) -> Optional[dict]:
    """SpanWindow's facts: the span ingested, the window, counts per span, drift."""
    return _artifact_json(window_uri, WINDOW_FILE)


def read_start(model_uri: Optional[str]) -> Optional[dict]:
    """The Trainer's warm start record (model_code.warm_start.Start.record), if it made one."""
    from tfx.utils import path_utils

    if not model_uri:
        return None
    return (precision.read_record(path_utils.serving_model_dir(model_uri)) or {}).get(
        "warm_start")


def _thresholds(eval_result) -> List[Tuple[str, str, object]]:
    """(metric name, kind, threshold proto) for every configured threshold."""
    rows = []
    for spec in eval_result.config.metrics_specs:
        for metric in spec.metrics:
            name = json.loads(metric.config or "{}").get("name", metric.class_name)
            thresholds = [metric.threshold] + [t.threshold for t in metric.per_slice_thresholds]
            for threshold in thresholds:
                if threshold.HasField("value_threshold"):
                    rows.append((name, "value", threshold.value_threshold))
                if threshold.HasField("change_threshold"):
                    rows.append((name, "change", threshold.change_threshold))
    return rows


def _curves(log_dir: str) -> Dict[str, Dict[str, List[Tuple[int, float]]]]:
    """TensorBoard scalars: tag -> {"train"|"validation": [(step, value)]}."""
    import tensorflow as tf

    curves: Dict[str, Dict[str, List[Tuple[int, float]]]] = {}
    # gfile, not glob: inside the pipeline the folders may be gs:// URIs.
    paths = sorted(os.path.join(folder, name) for folder, _, names in tf.io.gfile.walk(log_dir)
                   for name in names if name.startswith("events.out.tfevents."))
    for path in paths:
        phase = os.path.basename(os.path.dirname(path))
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor))
                else:  # the model graph, histograms, ...
                    continue
                curves.setdefault(value.tag, {}).setdefault(phase, []).append(
                    (event.step, number))
    return curves


def _gallery(model_dir: str, examples_dir: str, split: str, limit: int = 200):
    """Applies the candidate to up to `limit` test examples; returns per-example records."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(examples_dir, f"Split-{split}", "*")))
    if not files:
        return []
    model = tf.saved_model.load(model_dir)
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
               .take(limit)]
    items = []
    for start in range(0, len(records), 16):
        batch = tf.constant(records[start:start + 16])
        scores = model.signatures["serving_default"](examples=batch)["scores"].numpy()
        masks = model.signatures["transform_features"](examples=batch)["mask"].numpy()
        for record, score, mask in zip(records[start:start + 16], scores, masks):
            predicted = score.argmax(-1)
            ious = [np.sum((mask == k) & (predicted == k)) / union
                    for k in range(score.shape[-1])
                    if (union := np.sum((mask == k) | (predicted == k))) > 0]
            features = tf.train.Example.FromString(record).features.feature
            items.append({
                "file_name": features["file_name"].bytes_list.value[0].decode(),
                "image": tf.io.decode_image(features["image"].bytes_list.value[0], channels=3,
                                            expand_animations=False).numpy(),
                "true": mask, "predicted": predicted, "iou": float(np.mean(ious)),
            })
    return items


# ---------------------------------------------------------------- rendering

def _png_data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _threshold_text(kind: str, threshold) -> str:
    parts = []
    if kind == "value":
        if threshold.HasField("lower_bound"):
            parts.append(f"≥ {threshold.lower_bound.value:g}")
        if threshold.HasField("upper_bound"):
            parts.append(f"≤ {threshold.upper_bound.value:g}")
    else:
        if threshold.HasField("absolute"):
            parts.append(f"change vs baseline ≥ {threshold.absolute.value:g}")
        if threshold.HasField("relative"):
            parts.append(f"relative change ≥ {threshold.relative.value:g}")
    return ", ".join(parts)


def _verdict(run: ReportInputs, blessed: Optional[bool], overall: Dict[str, float],
             thresholds, has_baseline: bool, failures: List[str]) -> dict:
    rows = []
    for name, kind, threshold in thresholds:
        value = overall.get(name if kind == "value" else f"{name}_diff")
        if kind == "change" and not has_baseline:
            result, css = "skipped: no blessed baseline yet", ""
        elif value is None:
            result, css = "missing", "bad"
        elif _passes(kind, threshold, value):
            result, css = "pass", "good"
        else:
            result, css = "FAIL", "bad"
        rows.append({"metric": name, "threshold": _threshold_text(kind, threshold),
                     "value": _fmt(value), "result": result, "result_css": css})
    if blessed:
        text, css = "BLESSED", "good"
    elif blessed is None:
        text, css = "NOT EVALUATED", "bad"
    else:
        text, css = "NOT BLESSED", "bad"
    return {"text": text, "css": css, "rows": rows, "failures": failures,
            "pushed_to": run.pushed_destination,
            "pusher_pushes": bool(blessed) and run.pushed is None}


def _passes(kind: str, threshold, value: float) -> bool:
    if kind == "value":
        return not ((threshold.HasField("lower_bound") and value < threshold.lower_bound.value)
                    or (threshold.HasField("upper_bound")
                        and value > threshold.upper_bound.value))
    return not (threshold.HasField("absolute") and value < threshold.absolute.value)


def _data_checks(checks: Optional[dict]) -> Optional[dict]:
    if not checks:
        return None
    reasons = [[reason, str(n)] for reason, n in sorted(checks["reasons"].items())]
    return dict(checks, reasons=reasons)


def _data_over_time(window: Optional[dict], start: Optional[dict]) -> Optional[dict]:
    if not window:
        return None
    splits = sorted({split for counts in window["counts"].values() for split in counts})
    rows = [[f"span {span}", *[str(counts.get(split, 0)) for split in splits]]
            for span, counts in window["counts"].items()]
    drift = [[d["feature"], d["measure"], f"{d['value']:.4g}", f"{d['threshold']:g}",
              "drift" if d["drifted"] else "ok"] for d in window["drift"]]
    if start is None:
        started = None
    elif start["warm"]:
        started = f"Warm start from the latest blessed model {start['from']}."
    else:
        started = f"Cold start: {start['reason']}."
    return {"span": window["span"], "window": [str(s) for s in window["window"]],
            "ingested": [str(s) for s in window.get("ingested", window["window"])],
            "splits": splits, "rows": rows, "drift_summary": window["drift_summary"],
            "drift": drift, "drifted": any(d["drifted"] for d in window["drift"]),
            "action": window.get("drift_action", "warn"), "start": started}


def _hyperparameter(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _tuning(trials: Optional[List[dict]], used: Optional[dict]) -> Optional[dict]:
    if not trials:
        return None
    names = [key for key in trials[0] if key not in ("trial_id", "score")]
    rows = [[str(trial["trial_id"]), _fmt(trial["score"]),
             *[_hyperparameter(trial[name]) for name in names]] for trial in trials]
    return {"count": len(trials), "names": names, "rows": rows,
            "used": [f"{name} = {_hyperparameter(value)}" for name, value in (used or {}).items()]}


def _metric_names(num_classes: int) -> List[str]:
    names = list(HEADLINE)
    for class_name in CLASS_NAMES[:num_classes]:
        names += [metrics.iou_name(class_name), metrics.dice_name(class_name)]
    return names


def _metric_rows(overall: Dict[str, float], num_classes: int) -> List[dict]:
    rows = []
    for name in ["example_count"] + _metric_names(num_classes):
        value, diff = overall.get(name), overall.get(f"{name}_diff")
        baseline = None if value is None or diff is None else value - diff
        digits = 0 if name == "example_count" else 4
        rows.append({"metric": name, "candidate": _fmt(value, digits),
                     "baseline": _fmt(baseline, digits),
                     "delta": "–" if diff is None else f"{diff:+.4f}",
                     "delta_css": "" if diff is None else "good" if diff >= 0 else "bad"})
    return rows


def _confusion(overall: Dict[str, float], num_classes: int) -> dict:
    names = CLASS_NAMES[:num_classes]
    rows = []
    for true_name in names:
        cells = []
        for predicted_name in names:
            value = overall.get(metrics.confusion_name(true_name, predicted_name))
            cells.append({"shade": 0 if value is None else int(255 - 180 * value),
                          "percent": _fmt(None if value is None else 100 * value, 1)})
        rows.append({"name": true_name, "cells": cells})
    return {"headers": ["true \\ predicted", *names], "rows": rows}


def _slices(slices: Dict[Tuple, Dict[str, float]], num_classes: int) -> dict:
    names = {"species": SPECIES, "label": BREEDS}
    groups = []
    for feature, title in (("species", "By species"), ("label", "By breed (worst first)")):
        rows = []
        for key, values in slices.items():
            if len(key) != 1 or key[0][0] != feature:
                continue
            value = int(key[0][1])
            label = names[feature][value] if 0 <= value < len(names[feature]) else str(value)
            rows.append((values.get(metrics.MEAN_IOU, -1.0), [
                label, _fmt(values.get("example_count"), 0),
                _fmt(values.get(metrics.PIXEL_ACCURACY)), _fmt(values.get(metrics.MEAN_IOU)),
                *[_fmt(values.get(metrics.iou_name(n))) for n in CLASS_NAMES[:num_classes]]]))
        rows.sort(key=lambda row: row[0] if feature == "label" else 0)
        groups.append({"title": title, "rows": [row for _, row in rows]})
    headers = ["slice", "examples", "pixel accuracy", "mean IoU"] + [
        f"IoU {name}" for name in CLASS_NAMES[:num_classes]]
    return {"headers": headers, "groups": groups}


def _curves_png(curves) -> Optional[str]:
    """The loss, mean IoU and learning rate plots as one PNG data: URI (None without logs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    wanted = [("epoch_loss", "loss"), ("epoch_mean_iou", "mean IoU"),
              ("epoch_learning_rate", "learning rate")]
    present = [(tag, title) for tag, title in wanted if tag in curves]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 3.2))
    for ax, (tag, title) in zip(np.atleast_1d(axes), present):
        for phase, points in sorted(curves[tag].items()):
            steps, values = zip(*sorted(points))
            ax.plot(np.asarray(steps) + 1, values, marker="o", markersize=3, label=phase)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if tag == "epoch_learning_rate" and all(v > 0 for points in curves[tag].values()
                                                  for _, v in points):
            ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return _png_data_uri(Image.open(io.BytesIO(buffer.getvalue())))


def _gallery_figures(items) -> Optional[dict]:
    """The first and the worst examples, each as four panels in a PNG data: URI."""
    from model_code.visualize import four_panels

    if not items:
        return None
    first = items[:GALLERY_SIZE]
    worst = sorted(items, key=lambda item: item["iou"])[:GALLERY_SIZE]
    groups = []
    for title, chosen in (("First examples", first), ("Worst examples by IoU", worst)):
        figures = [{"file_name": item["file_name"], "iou": f"{item['iou']:.3f}",
                    "src": _png_data_uri(four_panels(item["image"], item["predicted"],
                                                     item["true"]))} for item in chosen]
        groups.append({"title": title, "figures": figures})
    return {"count": len(items), "groups": groups}


@functools.lru_cache(maxsize=None)
def _template():
    """The page template; autoescape=True, as select_autoescape() goes by the name's last
    extension (".j2") and would leave it off."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(PAGE_TEMPLATE)


def render(run: ReportInputs) -> str:
    """The whole page, as one string."""
    import tensorflow_model_analysis as tfma
    from tfx.utils import path_utils

    eval_result = tfma.load_eval_result(run.evaluation_uri)
    slices = slice_metrics(eval_result)
    overall = slices.get((), {})
    num_classes = sum(1 for name in CLASS_NAMES if metrics.iou_name(name) in overall) or 3
    has_baseline = any(name.endswith("_diff") for name in overall)
    serving_dir = path_utils.serving_model_dir(run.model_uri) if run.model_uri else None
    items = (_gallery(serving_dir, run.examples_uri, run.split)
             if serving_dir and run.examples_uri else [])
    curves = _curves(run.model_run_uri) if run.model_run_uri else {}
    record = precision.read_record(serving_dir) if serving_dir else None
    return _template().render(
        title=f"U-Net pet segmentation — evaluation{' of run ' + run.title if run.title else ''}",
        note=run.note,
        evaluation_uri=run.evaluation_uri,
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        trained=({"precision": record["precision"], "reason": record["precision_reason"]}
                 if record else None),
        verdict=_verdict(run, read_blessing(run.blessing_uri), overall, _thresholds(eval_result),
                         has_baseline, validation_failures(run.evaluation_uri)),
        checks=_data_checks(read_data_checks(run.quarantine_uri)),
        spans=_data_over_time(read_window(run.window_uri), (record or {}).get("warm_start")),
        tuning=_tuning(read_tuner_results(run.tuner_results_uri),
                       (record or {}).get("hyperparameters")),
        has_baseline=has_baseline,
        metric_rows=_metric_rows(overall, num_classes),
        confusion=_confusion(overall, num_classes),
        slices=_slices(slices, num_classes),
        curves_png=_curves_png(curves),
        gallery=_gallery_figures(items))


def write_page(run: ReportInputs, path: str) -> str:
    """Renders the page and writes it to `path` (local or remote, through TensorFlow's gfile)."""
    import tensorflow as tf

    page = render(run)
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(page)
    return path
