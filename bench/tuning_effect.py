"""What a small hyperparameter search buys on the demo data: tuned vs untuned demo run.

    .venv/bin/python bench/tuning_effect.py              # ~10 min on 2 cores
    .venv/bin/python bench/tuning_effect.py --tune-trials 4 --tune-epochs 3

Runs `local_runner.py` (demo preset, 1,000 synthetic pets) twice, each in its own process on a
fresh pipeline root: as is, and with --tune. Prints each run's TFMA test mean IoU and pixel
accuracy, the Tuner's and Trainer's seconds, the whole run's minutes, and the hyperparameters
the search chose; writes outputs/bench/tuning_effect.json.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def run(extra, out: str) -> dict:
    from pipeline.run_summary import summarize_latest_run

    metadata = os.path.join(out, "metadata.sqlite")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "local_runner.py"), "--preset", "demo",
         "--pipeline-root", os.path.join(out, "root"), "--serving-dir",
         os.path.join(out, "serving"), "--metadata-path", metadata, *extra],
        capture_output=True, text=True)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode:
        raise RuntimeError(f"local_runner {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    summary = summarize_latest_run(metadata)
    return {"args": extra, "minutes": minutes,
            "mean_iou": summary.metrics["mean_iou"],
            "pixel_accuracy": summary.metrics["pixel_accuracy"],
            "tuner_s": summary.seconds.get("Tuner"), "trainer_s": summary.seconds["Trainer"],
            "trials": summary.trials, "console": done.stdout}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune-trials", type=int)
    parser.add_argument("--tune-epochs", type=int)
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)
    tune = ["--tune"]
    if args.tune_trials:
        tune += ["--tune-trials", str(args.tune_trials)]
    if args.tune_epochs:
        tune += ["--tune-epochs", str(args.tune_epochs)]

    from pipeline import console
    from trainer_bench import cpu_description

    console.quiet()
    results = {"cpu": cpu_description()}
    print(f"CPU: {results['cpu']}", flush=True)
    for name, extra in (("untuned", []), ("tuned", tune)):
        with tempfile.TemporaryDirectory() as out:
            results[name] = run(extra, out)
        row = results[name]
        print(f"{name:8s} test mean IoU {row['mean_iou']:.4f}, pixel accuracy "
              f"{row['pixel_accuracy']:.4f}; Tuner {row['tuner_s'] or 0:.0f} s, Trainer "
              f"{row['trainer_s']:.0f} s, whole run {row['minutes']:.1f} min", flush=True)
    for trial in results["tuned"]["trials"]:
        print(f"  trial {trial['trial_id']}: score {trial['score']:.4f}, " + ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in trial.items() if k not in ("trial_id", "score")))
    result_file.save(args.out, "tuning_effect.json", results)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
