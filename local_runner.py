"""Runs the pipeline on this machine with TFX's LocalDagRunner.

    python local_runner.py                       # demo preset on synthetic pets, offline
    python local_runner.py --preset seed --data-dir data/real   # the tutorial, on real data
    python local_runner.py --tune                # first search hyperparameters with TFX's Tuner
    python local_runner.py --data-dir data/spans # a folder of span-N/ folders: continuous training

With a --data-dir of span folders (span-1/, span-2/, ...: README, "Continuous training") a run
ingests the newest span, checks it for drift against the span before, trains on a window of the
newest spans, warm-starting from the latest blessed model. A run with nothing new (the newest
span unchanged, the same settings, and the last run completed) says so and stops.

With no --data-dir, a synthetic dataset in TFDS's on-disk format is written first if missing.
Before anything heavy, the flags, the folders and the --data-dir (read through once) are checked,
so a number out of range, a Beam argument Beam refuses, a folder that cannot be written, a wrong
data folder, a truncated file or a foreign schema fail in one line (exit status 2); so does a
second run on a pipeline root or metadata file that a run is using. Ctrl-C ends a run with one
line and exit status 130; the same command then resumes it from TFX's cache.

After the run it prints what this run produced (data checks, test metrics, verdict, pushed model,
evaluation and TensorBoard folders, and the HTML evaluation report that the pipeline's
EvaluationReport step wrote under the pipeline root, copied to report.html beside it for
browsers). Exit status 0 means the pipeline completed, whether or not the model was blessed and
pushed; a push that cannot be written (a full disk) ends in one line and exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import sys

from model_code.config import DRIFT_ACTIONS, PRESETS, WARM_START, get_preset
from model_code.precision import PRECISIONS
from pipeline import beam_options, console, dataset, preflight, spans

HERE = os.path.dirname(os.path.abspath(__file__))
INTERRUPTED = ("interrupted: run the same command again to go on; the components that completed "
               "are served from the cache")
SYNTHETIC_NOTE = ("This model learned synthetic pets, to show the pipeline working: its masks of "
                  "real photos mean nothing. Real data: --preset seed --data-dir DIR (README).")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--data-dir", help="TFDS oxford_iiit_pet/4.0.0 folder (or its data_dir), "
                        "or any folder of TFRecords with that schema; default: synthetic pets")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="training precision; auto (the presets' default) picks mixed "
                             "precision where this machine computes it natively")
    parser.add_argument("--pipeline-root", help="default: outputs/<preset>/pipeline_root")
    parser.add_argument("--serving-dir", help="where blessed models are pushed, one folder per "
                        "version; default: outputs/<preset>/serving_model")
    parser.add_argument("--metadata-path", help="ML Metadata SQLite file; "
                        "default: outputs/<preset>/metadata.sqlite")
    parser.add_argument("--tune", action="store_true",
                        help="add TFX's Tuner: search the learning rates and U-Net width "
                             "(the preset's tuning section), then train with the best")
    parser.add_argument("--tune-trials", type=int, metavar="N",
                        help="with --tune: trials to run (default: the preset's)")
    parser.add_argument("--tune-epochs", type=int, metavar="N",
                        help="with --tune: epochs per trial (default: the preset's)")
    parser.add_argument("--window-spans", type=int, metavar="K",
                        help="with a --data-dir of span folders: train on the newest K spans "
                             "(default: the preset's)")
    parser.add_argument("--warm-start", choices=WARM_START,
                        help="with span folders: auto (the presets' default) starts from the "
                             "latest blessed model's weights when they fit; never trains cold")
    parser.add_argument("--on-drift", choices=DRIFT_ACTIONS,
                        help="with span folders: warn (the presets' default) or stop the run "
                             "before training when the new span drifted")
    parser.add_argument("--beam-mode", choices=beam_options.MODES, default="auto",
                        help="Beam DirectRunner: in_memory (one process) or multi_processing "
                             "(one worker per CPU); auto picks by the input's size")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="extra Beam pipeline argument (repeatable); these come last, so "
                             "they win over --beam-mode's (e.g. --beam-arg=--runner=FlinkRunner)")
    parser.add_argument("--verbose", action="store_true",
                        help="show every library's logs (TensorFlow, TFX, Beam) as they come")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.verbose:
        console.quiet()  # before anything imports TensorFlow
    out = os.path.join(HERE, "outputs", args.preset)
    pipeline_root = os.path.abspath(args.pipeline_root or os.path.join(out, "pipeline_root"))
    serving_dir = os.path.abspath(args.serving_dir or os.path.join(out, "serving_model"))
    metadata_path = os.path.abspath(args.metadata_path or os.path.join(out, "metadata.sqlite"))

    with contextlib.ExitStack() as held:
        try:
            config = check_settings(args)
            preflight.check_folder("--pipeline-root", pipeline_root)
            preflight.check_folder("--serving-dir", serving_dir)
            preflight.check_store("--metadata-path", metadata_path)
            layout = spans.find_spans(args.data_dir) if args.data_dir else None
            if layout:
                data_root = layout.root
                examples = dataset.check_tfrecords(layout.folder(layout.newest))
            elif args.data_dir:
                data_root = dataset.find_tfrecord_dir(args.data_dir)
                examples = dataset.check_tfrecords(data_root)
            else:
                data_root = dataset.ensure_synthetic(
                    os.path.join(HERE, "data", f"synthetic_{config.synthetic_examples}"),
                    config.synthetic_examples)
                examples = config.synthetic_examples
            spans.check_span_flags(args, bool(layout), "--data-dir", "span-1/, span-2/, ...")
            beam_mode, beam_why = beam_options.choose(args.beam_mode, examples)
            held.enter_context(preflight.exclusive(pipeline_root, metadata_path))
        except ValueError as err:  # DataDirError and StoreBusy included
            print(f"error: {err}", file=sys.stderr)
            return 2
        return run(args, config, data_root, beam_mode, beam_why, pipeline_root, serving_dir,
                   metadata_path, layout)


def check_settings(args: argparse.Namespace):
    """The run's configuration, once the flags are known to make sense (ValueError if not)."""
    for flag, value in (("--epochs", args.epochs), ("--tune-trials", args.tune_trials),
                        ("--tune-epochs", args.tune_epochs), ("--window-spans", args.window_spans)):
        preflight.check_count(flag, value)
    if (args.tune_trials or args.tune_epochs) and not args.tune:
        raise ValueError("--tune-trials and --tune-epochs set the Tuner's budget; "
                         "add --tune to run it")
    if args.beam_arg:
        beam_options.check_args(args.beam_arg)
    return get_preset(args.preset, args.epochs, args.precision, args.tune_trials,
                      args.tune_epochs, window_spans=args.window_spans,
                      warm_start=args.warm_start, drift_action=args.on_drift)


def run(args: argparse.Namespace, config, data_root: str, beam_mode: str, beam_why: str,
        pipeline_root: str, serving_dir: str, metadata_path: str, layout=None) -> int:
    """Runs the pipeline and prints what this run produced; 2 for the failures we expect."""
    # Heavy imports only once the arguments are known to be good.
    from components.atomic_pusher import PushError
    from components.example_quarantine import DataQualityError
    from components.span_window import DriftError, SpanStoreError
    from pipeline.pipeline import PIPELINE_NAME
    from pipeline.run_summary import summarize_run

    print(f"Pipeline {PIPELINE_NAME}, preset {args.preset}, data {data_root}", flush=True)
    if layout:
        print(f"Spans: {layout.describe()}", flush=True)
    print(f"Beam: DirectRunner {beam_mode} ({beam_why})", flush=True)
    pipeline = build_pipeline(args, config, data_root, beam_mode, pipeline_root, serving_dir,
                              metadata_path, layout)
    if layout:
        done = nothing_new(layout, pipeline, metadata_path)
        if done:
            print(done)
            return 0
    progress = None if args.verbose else console.ComponentProgress().attach()
    try:
        skipped = not_ingested(layout, pipeline_root) if layout else ""
        if skipped:
            print(skipped, flush=True)
        run_id = run_locally(pipeline)
    except (DataQualityError, PushError, DriftError, SpanStoreError) as err:  # expected
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if progress:
            progress.detach()
    summary = summarize_run(metadata_path, run_id)
    print(summary.format(components=args.verbose))
    if not args.data_dir:
        print(SYNTHETIC_NOTE)
    if summary.report_path:
        page = publish_report(summary.report_path, os.path.dirname(pipeline_root))
        print(f"Open in a browser:   {page}")
    return 0


def run_locally(pipeline) -> str:
    """Runs `pipeline` with TFX's LocalDagRunner and returns the run's id.

    LocalDagRunner names a run by the time it starts and tells nobody; the newest run in the
    store may be someone else's. So the pipeline is compiled here and its run id parameter set
    (the same kind of timestamp) before LocalDagRunner gets it, which leaves a set one as it is.
    """
    from tfx import v1 as tfx
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration.portable import runtime_parameter_utils

    # LocalDagRunner.run would first package any component's module_file as a wheel; this
    # pipeline has none (its code is referenced by installed module path).
    ir = compiler.Compiler().compile(pipeline)
    run_id = datetime.datetime.now().isoformat()
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    tfx.orchestration.LocalDagRunner().run_with_ir(ir)
    return run_id


def nothing_new(layout, pipeline, metadata_path: str) -> str:
    """A line saying there is nothing to do, when the newest run that pushed (or kept) its model
    already trained on this very span (TFX's fingerprint: file names, sizes, modification
    times) with the same Trainer settings, Tuner or not, and serving folder; else "". A
    warm-started Trainer would otherwise train again from its own blessed model, and push a
    copy of it, every time a schedule finds no new data."""
    from tfx.components.example_gen import input_processor

    from pipeline.run_summary import last_completed_run

    last = last_completed_run(metadata_path)
    if last is None:
        return ""
    by_id = {component.id: component for component in pipeline.components}
    processor = input_processor.FileBasedInputProcessor(
        layout.root, _splits(by_id["ImportExampleGen"].exec_properties["input_config"]), None)
    span, version = processor.resolve_span_and_version()
    now = (span, processor.get_input_fingerprint(span, version),
           json.loads(by_id["Trainer"].exec_properties["custom_config"]), "Tuner" in by_id,
           by_id["Pusher"].exec_properties["push_destination"])
    then = (last.span, last.fingerprint, json.loads(last.trainer_config or "null"), last.tuned,
            last.push_destination)
    if now != then:
        return ""
    return (f"No new span: span {span} is unchanged since run {last.run_id} trained on it "
            f"with these settings; nothing to do. Add span-{span + 1}/ to {layout.root} to "
            "train again.")


def not_ingested(layout, pipeline_root: str) -> str:
    """A warning line naming spans older than the newest that no run has ingested (they
    arrived together with a newer one, or before the first run), else "". SpanStoreError for
    a record in the store that cannot be used."""
    from components.span_window import stored_spans

    stored = set(stored_spans(spans.store_path(pipeline_root)))
    skipped = [span for span in layout.spans[:-1] if span not in stored
               and span > max(stored, default=-1)]
    if not skipped:
        return ""
    names = ", ".join(f"span-{span}" for span in skipped)
    return (f"Note: {names} will not be trained on: a run ingests only the newest span. To "
            f"include {'them' if len(skipped) > 1 else 'it'}, move the newer spans out, run, "
            "and move them back one at a time.")


def _splits(input_config_json: str):
    from tfx import v1 as tfx
    from tfx.utils import proto_utils

    return proto_utils.json_to_proto(input_config_json, tfx.proto.Input()).splits


def build_pipeline(args: argparse.Namespace, config, data_root: str, beam_mode: str,
                   pipeline_root: str, serving_dir: str, metadata_path: str, layout=None):
    """The pipeline this runner runs: pipeline.create_pipeline with the local choices."""
    from tfx import v1 as tfx

    from pipeline.pipeline import PIPELINE_NAME, Spans, create_pipeline

    return create_pipeline(
        pipeline_name=PIPELINE_NAME,
        pipeline_root=pipeline_root,
        data_root=data_root,
        serving_dir=serving_dir,
        config=config,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path),
        beam_pipeline_args=[*beam_options.direct_runner_args(beam_mode), *args.beam_arg],
        report_note="" if args.data_dir else SYNTHETIC_NOTE,
        tune=args.tune,
        spans=Spans(pattern=layout.pattern, store=spans.store_path(pipeline_root))
        if layout else None)


def publish_report(report_path: str, folder: str) -> str:
    """Copies the run's report artifact to report.html in `folder` and returns that path.

    The artifact is one file named by TFX (`.../EvaluationReport/report/<id>/value`); browsers
    decide by the file name (a link's target's) whether a local file is a web page.
    """
    page = os.path.join(folder, "report.html")
    staging = f"{page}.new"
    shutil.copyfile(report_path, staging)
    os.replace(staging, page)
    return page

if __name__ == "__main__":
    console.end_quietly_on_interrupt(INTERRUPTED)
    sys.exit(main())
