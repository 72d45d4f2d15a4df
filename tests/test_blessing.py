"""Gating: a candidate clearly worse than the blessed baseline is not blessed and not pushed.

The baseline trains briefly; the degraded candidate is the same network with every learning rate
set to zero, so it keeps its random initial weights. Same data, same pipeline root and metadata,
one run after the other, as a user would run them.
"""
import dataclasses
import os
import re

import pytest
from tfx import v1 as tfx

from model_code.config import SMOKE
from pipeline import beam_options
from pipeline.pipeline import create_pipeline
from pipeline.run_summary import summarize_latest_run

BASELINE = dataclasses.replace(SMOKE, num_filters_start=8, num_epochs=6,
                               lr_schedule_values=(3e-3, 2e-3, 1e-3, 5e-4),
                               max_mean_iou_regression=0.02)
DEGRADED = dataclasses.replace(BASELINE, lr_schedule_values=(0.0, 0.0, 0.0, 0.0))


def _run(config, data_root, out):
    metadata = str(out / "metadata.sqlite")
    tfx.orchestration.LocalDagRunner().run(create_pipeline(
        pipeline_name="blessing-test", pipeline_root=str(out / "root"), data_root=data_root,
        serving_dir=str(out / "serving"), config=config,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata),
        beam_pipeline_args=beam_options.direct_runner_args("in_memory")))
    return summarize_latest_run(metadata), metadata


@pytest.fixture(scope="module")
def two_runs(tfds_pets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("blessing")
    data_root = os.path.join(tfds_pets_dir, "oxford_iiit_pet", "4.0.0")
    baseline, _ = _run(BASELINE, data_root, out)
    degraded, metadata = _run(DEGRADED, data_root, out)
    return out, baseline, degraded, metadata


def test_baseline_is_blessed_and_pushed(two_runs):
    out, baseline, _, _ = two_runs
    assert baseline.blessed and baseline.pushed
    assert os.listdir(out / "serving") == [os.path.basename(baseline.pushed_destination)]


def test_degraded_candidate_is_not_blessed_and_not_pushed(two_runs):
    out, baseline, degraded, _ = two_runs
    assert degraded.executions["Trainer"] == "COMPLETE"  # a new model really was trained
    assert degraded.metrics["mean_iou_diff"] < -BASELINE.max_mean_iou_regression
    assert degraded.blessed is False
    assert degraded.pushed is False
    assert os.listdir(out / "serving") == [os.path.basename(baseline.pushed_destination)]
    assert any(failure.startswith("mean_iou") for failure in degraded.validation_failures)


def test_report_says_why_it_was_not_blessed(two_runs):
    _, _, degraded, _ = two_runs
    page = open(degraded.report_path, encoding="utf-8").read()  # the pipeline's own report
    assert re.search(r'id="verdict"[^>]*>NOT BLESSED<', page)
    assert "Not pushed." in page
    row = re.search(r"<tr><td>mean_iou</td><td>change vs baseline ≥ -0.02</td>"
                    r"<td>(-[0-9.]+)</td><td><b class=\"bad\">FAIL</b></td></tr>", page)
    assert row and float(row.group(1)) == pytest.approx(degraded.metrics["mean_iou_diff"],
                                                        abs=1e-4)
