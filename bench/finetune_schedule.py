"""Which fine-tuning schedule a warm start should use: warm-start chains vs cold on span 3's window.

    .venv/bin/python bench/finetune_schedule.py                  # 1,000 pets per span, ~12 min
    .venv/bin/python bench/finetune_schedule.py --schedules 3x1.0,4x1.0 --seeds 36

Writes three synthetic spans as the README's walkthrough does (span 3 with 90 % cats) and runs
the pipeline's data steps for each as it arrives (ImportExampleGen -> ... -> SpanWindow, in
fresh processes), which leaves the windows 1, 1-2 and 1-3 of transformed examples. Then, in
one process, with the demo preset and per seed: a cold model on window 1 (12 epochs), each
schedule EPOCHSxSCALE continued warm on window 1-2 and then on window 1-3 (the chain the
pipeline runs), and a cold model on window 1-3. Each model is scored by its pixel mean IoU on
span 3's test split (model_code.metrics.PixelMeanIoU; TFMA in the pipeline computes the same).
Training calls model_code.trainer.fit, the Trainer's own; no TensorBoard pictures.
Prints every result and the mean difference warm - cold per schedule; writes
outputs/bench/finetune_schedule.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

import result_file
import trainer_bench
from continuous_training import data_steps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def windows(tmp: str, per_span: int) -> dict:
    """Span -> {window, transform_graph, transformed} of the data steps run as it arrived."""
    from pipeline import spans
    from pipeline.run_summary import summarize_latest_run

    data, out = os.path.join(tmp, "spans"), os.path.join(tmp, "runs")
    found = {}
    for span, shift in ((1, []), (2, []), (3, ["--cat-share", "0.9"])):
        subprocess.run([sys.executable, "-m", "pipeline.dataset", "--data-dir", data, "--source",
                        "synthetic", "--span", str(span), "--num-examples", str(per_span),
                        *shift], cwd=ROOT, check=True)
        data_steps(data, out, spans.find_spans(data).pattern)
        outputs = summarize_latest_run(os.path.join(out, "metadata.sqlite")).outputs
        found[span] = {"window": outputs["SpanWindow"]["window"],
                       "transform_graph": outputs["Transform"]["transform_graph"],
                       "transformed": outputs["Transform"]["transformed_examples"]}
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-span", type=int, default=1000)
    parser.add_argument("--schedules", default="3x1.0,4x1.0,3x0.3,4x0.5",
                        help="fine-tuning schedules, EPOCHSxLR_SCALE, comma-separated")
    parser.add_argument("--seeds", default="36,7")
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)
    schedules = [(int(e), float(s)) for e, s in (x.split("x") for x in args.schedules.split(","))]
    seeds = [int(s) for s in args.seeds.split(",")]
    cpu = trainer_bench.cpu_description()
    print(cpu, flush=True)

    import tensorflow_transform as tft

    from model_code import precision, trainer, warm_start
    from model_code.config import get_preset
    from model_code.metrics import PixelMeanIoU
    from model_code.unet import build_unet

    base = get_preset("demo")
    policy, _ = precision.choose(base.precision)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        found = windows(tmp, args.per_span)
        graph = tft.TFTransformOutput(found[3]["transform_graph"])

        class Files:  # the two fields of the Trainer's fn_args that load_data reads
            def __init__(self, window):
                self.train_files = [os.path.join(window, "Split-train", "*")]
                self.eval_files = [os.path.join(window, "Split-eval", "*")]

        data = {span: trainer.load_data(Files(f["window"]), base, graph)
                for span, f in found.items()}
        test = trainer._parsed_dataset([os.path.join(found[3]["transformed"], "Split-test", "*")],
                                       graph)
        test_batches = trainer.count_examples(test) // base.batch_size

        def mean_iou(weights) -> float:
            model = build_unet(base)
            model.set_weights(weights)
            metric = PixelMeanIoU(num_classes=base.num_classes)
            for image, mask, _ in trainer.make_dataset(test, base, training=False).take(
                    test_batches):
                metric.update_state(mask, model(image, training=False))
            return float(metric.result())

        def train(span, config, start, seed):
            config = dataclasses.replace(config, seed=seed)
            began = time.perf_counter()
            model, _ = trainer.fit(config, data[span], os.path.join(tmp, "logs"), policy,
                                   show=False, initial_weights=start)
            return model.get_weights(), time.perf_counter() - began

        for seed in seeds:
            first, _ = train(1, base, None, seed)
            cold, seconds = train(3, base, None, seed)
            results.append({"seed": seed, "side": "cold", "mean_iou": mean_iou(cold),
                            "seconds": seconds})
            print(results[-1], flush=True)
            for epochs, scale in schedules:
                schedule = warm_start.finetune(dataclasses.replace(
                    base, finetune_epochs=epochs, finetune_lr_scale=scale))
                second, _ = train(2, schedule, first, seed)
                third, seconds = train(3, schedule, second, seed)
                results.append({"seed": seed, "side": f"{epochs}x{scale}",
                                "mean_iou": mean_iou(third), "seconds": seconds})
                print(results[-1], flush=True)

    cold_iou = {r["seed"]: r["mean_iou"] for r in results if r["side"] == "cold"}
    summary = {}
    for epochs, scale in schedules:
        side = f"{epochs}x{scale}"
        gaps = [r["mean_iou"] - cold_iou[r["seed"]] for r in results if r["side"] == side]
        summary[side] = sum(gaps) / len(gaps)
        print(f"{side}: warm - cold mean IoU {summary[side]:+.4f} (per seed: "
              + ", ".join(f"{g:+.4f}" for g in gaps) + ")")
    result_file.save(args.out, "finetune_schedule.json",
                     {"cpu": cpu, "per_span": args.per_span, "results": results,
                      "mean_difference": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
