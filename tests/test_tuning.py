"""The optional Tuner (--tune): its configuration, its search space, and a tiny search end to end.

The end-to-end run is `local_runner.py --preset smoke --tune` (2 trials of 1 epoch) on TFDS-written
pets; it checks that the Trainer trained with the best trial's values and that the trials are in
the run summary, the evaluation report, and TensorBoard's HParams dashboard, asked of a real
TensorBoard server over HTTP.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import tensorflow as tf

import local_runner
from model_code import hyperparameters, precision
from model_code.config import SMOKE, Config, Tuning, get_preset
from pipeline.run_summary import summarize_latest_run


def test_tuning_section_round_trips_and_rejects_bad_budgets():
    config = get_preset("demo", trials=3, epochs_per_trial=2)
    assert (config.tuning.max_trials, config.tuning.epochs_per_trial) == (3, 2)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    trainer_fields = Config.from_custom_config(config.as_custom_config(config.without_tuning()))
    assert trainer_fields.tuning == Tuning()  # the Trainer does not see the budget
    with pytest.raises(ValueError, match="at least 1 trial"):
        get_preset("smoke", trials=0)
    with pytest.raises(ValueError, match="0 < low <= high"):
        Tuning(learning_rate=(1e-2, 1e-3))
    with pytest.raises(ValueError, match="unknown tuning keys"):
        Config.from_dict({"tuning": {"max_trails": 2}})


def test_searched_values_set_the_schedule_and_the_width():
    values = {"learning_rate": 1e-3, "lr_decay": 0.1, "num_filters_start": 32}
    tuned = hyperparameters.apply(SMOKE, values)
    assert tuned.num_filters_start == 32
    assert tuned.lr_schedule_values == pytest.approx((1e-3, 1e-4, 1e-5, 1e-6))
    moved = hyperparameters.apply(SMOKE, {"learning_rate": 6e-4})  # the configured shape, moved
    assert moved.lr_schedule_values == pytest.approx((6e-4, 2e-4, 2e-5, 2e-6))
    demo = get_preset("demo")  # 2e-3 -> 1e-4 in 3 steps; 16 filters
    assert hyperparameters.configured(demo) == pytest.approx(
        {"learning_rate": 2e-3, "lr_decay": (1e-4 / 2e-3) ** (1 / 3), "num_filters_start": 16})
    narrow = dataclasses.replace(demo, tuning=Tuning(learning_rate=(1e-3, 1e-3),
                                                     num_filters_start=(8, 32)))
    assert hyperparameters.configured(narrow)["learning_rate"] == 1e-3  # nearest allowed
    assert hyperparameters.configured(narrow)["num_filters_start"] == 8
    config = {"space": [], "values": {**values, "tuner/trial_id": "3"}}  # what TFX hands over
    assert hyperparameters.values_of(config) == values
    assert hyperparameters.values_of(None) == {}


def test_a_tuning_budget_without_tune_exits_2(capsys):
    assert local_runner.main(["--preset", "smoke", "--tune-trials", "2"]) == 2
    assert "add --tune" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tuned_run(tfds_pets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned_run")
    metadata = str(out / "metadata.sqlite")
    argv = ["--preset", "smoke", "--tune", "--data-dir", tfds_pets_dir,
            "--pipeline-root", str(out / "root"), "--serving-dir", str(out / "serving"),
            "--metadata-path", metadata]
    assert local_runner.main(argv) == 0
    return out, summarize_latest_run(metadata)


def test_the_trainer_trains_with_the_best_trials_values(tuned_run):
    _, summary = tuned_run
    assert summary.executions["Tuner"] == "COMPLETE"
    assert len(summary.trials) == SMOKE.tuning.max_trials
    best = max(summary.trials, key=lambda trial: trial["score"])
    assert summary.trials[0] == best
    searched = {name: best[name] for name in hyperparameters.SEARCHED}
    assert searched["num_filters_start"] in SMOKE.tuning.num_filters_start
    first = next(trial for trial in summary.trials if int(trial["trial_id"]) == 0)
    assert {name: first[name] for name in hyperparameters.SEARCHED} == pytest.approx(
        hyperparameters.configured(SMOKE))  # the search starts from the configuration

    record = precision.read_record(summary.pushed_destination)  # travels with the model
    assert record["hyperparameters"] == searched
    assert record["config"]["num_filters_start"] == searched["num_filters_start"]
    assert record["config"]["lr_schedule_values"][0] == pytest.approx(searched["learning_rate"])
    model = tf.saved_model.load(summary.pushed_destination)
    first_conv = [v.shape for v in model.variables if len(v.shape) == 4 and v.shape[2] == 3]
    assert first_conv == [(3, 3, 3, searched["num_filters_start"])]


def test_the_trials_are_in_the_summary_and_the_report(tuned_run):
    _, summary = tuned_run
    text = summary.format(components=False)
    assert re.search(r"Tuning: best of 2 trials: learning_rate=[0-9.e-]+, lr_decay=[0-9.e-]+, "
                     r"num_filters_start=\d+ \(validation mean IoU [0-9.]+\)", text)
    assert "Trials (HParams):" in text
    page = open(summary.report_path, encoding="utf-8").read()
    assert '<p id="tuning">2 trials, best first' in page
    table = page[page.index('class="trials"'):]
    assert table[:table.index("</table>")].count("<tr>") == 3  # header + 2 trials
    assert "The Trainer trained with learning_rate = " in page


def test_tensorboards_hparams_dashboard_lists_every_trial(tuned_run, tmp_path):
    _, summary = tuned_run
    logdir = summary.format().split("tensorboard --logdir ")[1].splitlines()[0]
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir,
         "--port", "0", "--host", "127.0.0.1"], stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stderr:
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "TensorBoard did not start"
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe empty

        def ask(route, body):
            request = urllib.request.Request(
                url + "data/plugin/hparams/" + route, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
            return json.load(urllib.request.urlopen(request, timeout=30))

        query = {"experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
                 "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_RUNNING"]}
        deadline = time.time() + 60
        while True:  # TensorBoard reads the logs in the background after it starts
            groups = ask("session_groups", query).get("sessionGroups", [])
            if len(groups) == len(summary.trials) or time.time() > deadline:
                break
            time.sleep(1)
        experiment = ask("experiment", {"experimentName": ""})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert {info["name"] for info in experiment["hparamInfos"]} == set(
        hyperparameters.SEARCHED)
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == ["epoch_mean_iou"]
    listed = {group["name"]: group for group in groups}
    for trial in summary.trials:
        group = listed[trial["trial_id"]]
        assert group["hparams"]["learning_rate"] == pytest.approx(trial["learning_rate"])
        assert group["hparams"]["num_filters_start"] == trial["num_filters_start"]
        shown = max(m["value"] for m in group["metricValues"])
        assert shown == pytest.approx(trial["score"], rel=1e-5)
