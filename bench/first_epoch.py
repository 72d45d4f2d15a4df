"""Fixed cost of training: first-epoch vs later-epoch time, with and without AutoGraph converting
tf_keras, and Keras' CenterCrop vs a static crop.

    .venv/bin/python bench/first_epoch.py [--repeats 3] [--preset demo] [--steps 40]

Each side trains the preset's U-Net in a fresh process for two epochs of `--steps` steps on
Transform's output of the 1,000 synthetic pets (as bench/trainer_bench.py makes it) and reports
both epochs' wall time; the difference is what tracing, graph optimisation and filling the
input cache cost. Sides: `center` builds the skip-connection crops with tf_keras' CenterCrop
(model_code.unet; it puts a tf.cond in the graph), `static` with a Cropping2D of the same
amounts (no control flow; the same numbers and parameters); both with TF 2.16's AutoGraph as
installed, which converts tf_keras's own source at every trace. `skip` is `center` with
model_code.autograph_rules.skip_tf_keras(), as the Trainer runs now.
Interleaved, `--repeats` times; prints medians and writes outputs/bench/first_epoch.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import result_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def one_side(crop: str, preset: str, steps: int, transformed: str, graph: str) -> dict:
    import tensorflow_transform as tft
    import tf_keras as keras

    from model_code import unet
    from model_code.config import get_preset
    from model_code.trainer import _parsed_dataset, compile_model, make_dataset

    if crop == "static":
        def static_crop(x, height, width, name):
            dh, dw = x.shape[1] - height, x.shape[2] - width
            return keras.layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)),
                                           name=name)(x)

        unet._center_crop = static_crop
    if crop == "skip":
        from model_code import autograph_rules

        autograph_rules.skip_tf_keras()
    config = get_preset(preset, precision="float32")
    parsed = _parsed_dataset([os.path.join(transformed, "Split-train", "*")],
                             tft.TFTransformOutput(graph))
    model = compile_model(config, 2 * steps)
    times = []
    start = [0.0]
    model.fit(make_dataset(parsed, config, training=True), epochs=2, steps_per_epoch=steps,
              verbose=0, callbacks=[keras.callbacks.LambdaCallback(
                  on_epoch_begin=lambda epoch, logs: start.__setitem__(0, time.perf_counter()),
                  on_epoch_end=lambda epoch, logs: times.append(time.perf_counter() - start[0]))])
    return {"crop": crop, "first_epoch_s": times[0], "second_epoch_s": times[1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=["center", "static", "skip"], help=argparse.SUPPRESS)
    parser.add_argument("--transformed", help=argparse.SUPPRESS)
    parser.add_argument("--transform-graph", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(ROOT, "outputs", "bench"))
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(one_side(args.side, args.preset, args.steps, args.transformed,
                                  args.transform_graph)))
        return 0

    from trainer_bench import cpu_description, transform_output

    transform = transform_output(os.path.join(args.out, "trainer_data"))
    runs = {"center": [], "static": [], "skip": []}
    for _ in range(args.repeats):
        for side in runs:
            done = subprocess.run(
                [sys.executable, __file__, "--side", side, "--preset", args.preset,
                 "--steps", str(args.steps), "--transformed", transform["transformed_examples"],
                 "--transform-graph", transform["transform_graph"]],
                capture_output=True, text=True, check=True)
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {side:6s} {runs[side][-1]}", flush=True)
    cpu = cpu_description()
    print(f"\nCPU {cpu['model']}; {args.preset} preset, {args.steps} steps per epoch, "
          f"median of {args.repeats}")
    summary = {}
    for side, results in runs.items():
        first = statistics.median(r["first_epoch_s"] for r in results)
        second = statistics.median(r["second_epoch_s"] for r in results)
        summary[side] = {"first_epoch_s": first, "second_epoch_s": second,
                         "fixed_cost_s": first - second, "runs": results}
        print(f"  {side:6s} first epoch {first:5.1f} s, second {second:5.1f} s, "
              f"fixed cost {first - second:5.1f} s")
    result_file.save(args.out, "first_epoch.json",
                      {"cpu": cpu, "preset": args.preset, "sides": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
