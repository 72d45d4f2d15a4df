"""Compiles the pipeline for Vertex AI Pipelines or Kubeflow Pipelines 2.x, and can submit it.

    python kubeflow_runner.py --pipeline-root gs://BUCKET/root --data-root gs://BUCKET/pets/4.0.0 \\
        --image REGION-docker.pkg.dev/PROJECT/REPO/pets-unet:latest --output pipeline.json
    python kubeflow_runner.py ... --submit --project PROJECT --region us-central1
    python kubeflow_runner.py ... --submit --schedule "0 3 * * 1"   # a Vertex AI schedule
    python kubeflow_runner.py ... --target kubeflow        # writes pets_unet_pipeline.yaml
    python kubeflow_runner.py ... --data-root gs://BUCKET/pets --span-layout tfds   # span-N/ folders

The DAG comes from `pipeline.pipeline.create_pipeline`, the same function local_runner.py uses.
TFX's KubeflowV2DagRunner writes what each platform takes: for Vertex AI a PipelineJob (.json),
for Kubeflow Pipelines a bare PipelineSpec (.yaml), chosen by --target or the output's extension.
Every container runs `python -m pets_unet.entrypoint`, this project's thin wrapper around TFX's
container entrypoint (see that module). Every setting is a flag whose default comes from the
environment variable named in its help, so CI/CD can configure it without editing code.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
from typing import List, Optional, Tuple

from model_code.config import DRIFT_ACTIONS, PRESETS, WARM_START, get_preset
from model_code.precision import PRECISIONS
from pipeline import beam_options, preflight, spans

BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
# What each platform takes: file extension of the compiled package.
TARGETS = {"vertex": ".json", "kubeflow": ".yaml"}
DEFAULT_SPEC = "pets_unet_pipeline"
# The container command of every step: our wrapper of TFX's entrypoint, installed in the image.
ENTRYPOINT_MODULE = "pets_unet.entrypoint"
ENTRYPOINTS = {"vertex": ["python", "-m", ENTRYPOINT_MODULE],
               "kubeflow": ["python", "-m", ENTRYPOINT_MODULE, "--kubeflow"]}


def _env(name: str, default: Optional[str] = None) -> Optional[str]:
    return os.environ.get(name) or default


def _int_env(name: str) -> Optional[int]:
    value = _env(name)
    return int(value) if value else None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", default=_env("GOOGLE_CLOUD_PROJECT"),
                   help="GCP project [env GOOGLE_CLOUD_PROJECT]")
    p.add_argument("--region", default=_env("GOOGLE_CLOUD_REGION", "us-central1"),
                   help="GCP region [env GOOGLE_CLOUD_REGION, default us-central1]")
    p.add_argument("--pipeline-root", default=_env("PIPELINE_ROOT"),
                   help="gs:// folder for pipeline artifacts [env PIPELINE_ROOT]")
    p.add_argument("--data-root", default=_env("DATA_ROOT"),
                   help="folder of Oxford-Pets TFRecords, e.g. gs://B/tfds/oxford_iiit_pet/4.0.0 "
                        "[env DATA_ROOT]")
    p.add_argument("--serving-dir", default=_env("SERVING_DIR"),
                   help="where blessed models are pushed [env SERVING_DIR, default "
                        "<pipeline-root>/serving_model]")
    p.add_argument("--image", default=_env("PIPELINE_IMAGE"),
                   help="container image with this package installed (see Dockerfile) "
                        "[env PIPELINE_IMAGE]")
    p.add_argument("--preset", choices=sorted(PRESETS), default=_env("PRESET", "seed"),
                   help="configuration preset [env PRESET, default seed]")
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    p.add_argument("--precision", choices=PRECISIONS, default=_env("PRECISION"),
                   help="training precision; auto (the presets' default) picks mixed precision "
                        "where the training machine computes it natively [env PRECISION]")
    p.add_argument("--tune", action="store_true", default=_env("TUNE", "") == "1",
                   help="add TFX's Tuner before the Trainer (the preset's tuning section) "
                        "[env TUNE=1]")
    p.add_argument("--tune-trials", type=int, default=_int_env("TUNE_TRIALS"),
                   help="with --tune: trials to run [env TUNE_TRIALS, default: the preset's]")
    p.add_argument("--tune-epochs", type=int, default=_int_env("TUNE_EPOCHS"),
                   help="with --tune: epochs per trial [env TUNE_EPOCHS, default: the preset's]")
    p.add_argument("--span-layout", choices=sorted(spans.LAYOUTS), default=_env("SPAN_LAYOUT"),
                   help="--data-root holds span-N/ folders, each with TFDS's "
                        "oxford_iiit_pet/4.0.0/ (tfds) or the TFRecords themselves (files): each "
                        "run ingests the newest span (README, \"Continuous training\") [env "
                        "SPAN_LAYOUT; default: found in a local --data-root, else none]")
    p.add_argument("--window-spans", type=int, default=_int_env("WINDOW_SPANS"),
                   help="with spans: train on the newest K spans [env WINDOW_SPANS, default: "
                        "the preset's]")
    p.add_argument("--warm-start", choices=WARM_START, default=_env("WARM_START"),
                   help="with spans, on Vertex AI: auto starts from the latest blessed model "
                        "when it fits; never trains cold [env WARM_START, default: the preset's]")
    p.add_argument("--on-drift", choices=DRIFT_ACTIONS, default=_env("ON_DRIFT"),
                   help="with spans: warn, or stop before training when the new span drifted "
                        "[env ON_DRIFT, default: the preset's]")
    p.add_argument("--beam-runner", choices=BEAM_RUNNERS,
                   default=_env("BEAM_RUNNER", "DirectRunner"),
                   help="runner for the Beam components [env BEAM_RUNNER, default DirectRunner]")
    p.add_argument("--beam-arg", action="append", default=[],
                   help="extra Beam pipeline argument, repeatable (e.g. --beam-arg=--max_num_workers=8)")
    p.add_argument("--vertex-training", action="store_true",
                   default=_env("VERTEX_TRAINING", "") == "1",
                   help="train on Vertex AI Training instead of in the Trainer's pod [env "
                        "VERTEX_TRAINING=1]")
    p.add_argument("--vertex-machine-type", default=_env("VERTEX_MACHINE_TYPE", "n1-standard-8"),
                   help="Vertex training machine [env VERTEX_MACHINE_TYPE, default n1-standard-8]")
    p.add_argument("--vertex-accelerator-type", default=_env("VERTEX_ACCELERATOR_TYPE"),
                   help="e.g. NVIDIA_TESLA_T4 [env VERTEX_ACCELERATOR_TYPE]")
    p.add_argument("--vertex-accelerator-count", type=int,
                   default=int(_env("VERTEX_ACCELERATOR_COUNT", "0")),
                   help="[env VERTEX_ACCELERATOR_COUNT]")
    p.add_argument("--vertex-replica-count", type=int,
                   default=int(_env("VERTEX_REPLICA_COUNT", "1")),
                   help="machines training together (synchronous, MultiWorkerMirroredStrategy) "
                        "[env VERTEX_REPLICA_COUNT, default 1]")
    p.add_argument("--target", choices=sorted(TARGETS), default=_env("PIPELINE_TARGET"),
                   help="vertex: a PipelineJob .json for Vertex AI Pipelines; kubeflow: a "
                        "PipelineSpec .yaml for Kubeflow Pipelines 2.x [env PIPELINE_TARGET; "
                        "default: from --output's extension, else vertex]")
    p.add_argument("--output", default=_env("PIPELINE_SPEC"),
                   help="compiled package [env PIPELINE_SPEC, default pets_unet_pipeline.json "
                        "for vertex, pets_unet_pipeline.yaml for kubeflow]")
    p.add_argument("--submit", action="store_true",
                   help="submit the compiled PipelineJob to Vertex AI Pipelines (vertex only)")
    p.add_argument("--schedule", metavar="CRON", default=_env("PIPELINE_SCHEDULE"),
                   help="with --submit: create a Vertex AI pipeline schedule running the job on "
                        "this cron (5 fields, optionally after TZ=Area/City), one run at a time, "
                        "instead of one run now [env PIPELINE_SCHEDULE]")
    return p.parse_args(argv)


def check_cron(expression: str) -> str:
    """`expression` if it is a 5-field cron, as Vertex AI schedules take (ValueError if not)."""
    fields = expression.split()
    if fields and fields[0].startswith(("TZ=", "CRON_TZ=")):
        fields = fields[1:]
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
        raise ValueError(f"--schedule {expression!r}: not a cron expression of 5 fields "
                         "(minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1\" "
                         "for Mondays at 03:00 UTC, optionally after TZ=Europe/Berlin")
    return expression


IMAGE_SETUP_FILE = "/pipeline/setup.py"  # Dockerfile: WORKDIR /pipeline, COPY setup.py


def beam_pipeline_args(args: argparse.Namespace) -> List[str]:
    """Beam options for the chosen runner; DirectRunner keeps the local multi-processing default."""
    if args.beam_runner == "DirectRunner":
        # The image's copy of this project (Dockerfile): as locally, a dependency option keeps
        # TFX from packaging itself into the container's /tmp at every Beam step
        # (pipeline/beam_options.py); the DirectRunner stages nothing.
        common = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                  "--direct_num_workers=0", f"--setup_file={IMAGE_SETUP_FILE}"]
    elif args.beam_runner == "DataflowRunner":
        common = ["--runner=DataflowRunner", f"--project={args.project}",
                  f"--region={args.region}",
                  f"--temp_location={args.pipeline_root.rstrip('/')}/beam_tmp",
                  f"--sdk_container_image={args.image}", "--experiments=use_runner_v2"]
    else:  # Flink and Spark need their cluster options in --beam-arg
        common = [f"--runner={args.beam_runner}"]
    return common + list(args.beam_arg)


def resolve_target(args: argparse.Namespace) -> Tuple[str, str]:
    """(target, output path), from --target and --output; ValueError when they disagree."""
    by_extension = {".json": "vertex", ".yaml": "kubeflow", ".yml": "kubeflow"}
    if args.output is None:
        target = args.target or "vertex"
        return target, DEFAULT_SPEC + TARGETS[target]
    extension = os.path.splitext(args.output)[1].lower()
    if extension not in by_extension:
        raise ValueError(f"--output {args.output}: the name must end in .json (Vertex AI "
                         "PipelineJob) or .yaml (Kubeflow Pipelines PipelineSpec)")
    if args.target and by_extension[extension] != args.target:
        raise ValueError(f"--output {args.output} is a {by_extension[extension]} package but "
                         f"--target is {args.target}; use a {TARGETS[args.target]} name")
    if args.submit and by_extension[extension] != "vertex":
        raise ValueError("--submit sends a Vertex AI PipelineJob: use a .json --output; "
                         "upload a .yaml to Kubeflow Pipelines with its UI or kfp.Client")
    return by_extension[extension], args.output


def span_layout(args: argparse.Namespace) -> Optional[str]:
    """--span-layout, or the layout found in a local --data-root (DataDirError if it is wrong)."""
    if args.span_layout or "://" in args.data_root:
        return args.span_layout
    found = spans.find_spans(args.data_root)
    return found.layout if found else None


def _missing(args: argparse.Namespace) -> List[str]:
    needed = {"--pipeline-root": args.pipeline_root, "--data-root": args.data_root,
              "--image": args.image}
    if args.submit or args.vertex_training or args.beam_runner == "DataflowRunner":
        needed["--project"] = args.project
    return [flag for flag, value in needed.items() if not value]


def compile_pipeline(args: argparse.Namespace) -> str:
    """Writes the package for --target (see resolve_target) and returns its path."""
    # Imported by name: tfx.v1 hides KubeflowV2DagRunner silently when kfp is missing.
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.pipeline import PIPELINE_NAME, Spans, VertexTraining, create_pipeline

    target, output = resolve_target(args)
    output = os.path.abspath(output)
    vertex = None
    if args.vertex_training:
        vertex = VertexTraining(
            project=args.project, region=args.region, image=args.image,
            machine_type=args.vertex_machine_type,
            accelerator_type=args.vertex_accelerator_type,
            accelerator_count=args.vertex_accelerator_count,
            replica_count=args.vertex_replica_count)
    layout = span_layout(args)
    pipeline = create_pipeline(
        spans=Spans(pattern=spans.input_pattern(layout),
                    store=spans.store_path(args.pipeline_root)) if layout else None,
        pipeline_name=PIPELINE_NAME,
        pipeline_root=args.pipeline_root,
        data_root=args.data_root,
        serving_dir=args.serving_dir or f"{args.pipeline_root.rstrip('/')}/serving_model",
        config=settings(args),
        tune=args.tune,
        beam_pipeline_args=beam_pipeline_args(args),
        vertex_training=vertex,
        # Kubeflow Pipelines' compiler rejects resolver steps ("resolver executors not
        # implemented", kubeflow/pipelines backend/src/v2/compiler/argocompiler/dag.go).
        resolve_baseline=target == "vertex")
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=args.image, default_commands=ENTRYPOINTS[target],
            # Puts each step's declared input types in its arguments, where the entrypoint
            # finds them when Kubeflow's launcher has dropped them from the artifacts.
            use_pipeline_spec_2_1=True),
        output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
    runner.run(pipeline)
    if target == "kubeflow":
        finish_kubeflow_package(output, args.pipeline_root, spans=bool(layout))
    return output


def settings(args: argparse.Namespace):
    """The configuration the flags ask for (ValueError when they make no sense)."""
    return get_preset(args.preset, args.epochs, args.precision, args.tune_trials,
                      args.tune_epochs, window_spans=args.window_spans,
                      warm_start=args.warm_start, drift_action=args.on_drift)


def finish_kubeflow_package(package: str, pipeline_root: str, spans: bool = False) -> None:
    """Two things TFX leaves for a Kubeflow package: a default pipeline root, and (over spans)
    no caching of ImportExampleGen.

    Kubeflow Pipelines would otherwise put artifacts under its own default root (often
    minio://...), which TensorFlow cannot write; a run may still override it. Its cache key
    (the task's spec, parameters and input artifacts) cannot see new files in the data folder,
    and it runs no lifecycle hook (where Vertex AI runs ExampleGen's driver, whose fingerprint
    enters Vertex's key), so a cached ImportExampleGen would never see a new span. Downstream
    steps then run again too (their input is a new artifact). A data folder without spans is
    fixed, so its package keeps TFX's caching.
    """
    import yaml

    with open(package) as f:
        text = f.read()
    header = "".join(line + "\n" for line in itertools.takewhile(
        lambda line: line.startswith("#"), text.splitlines()))
    documents = list(yaml.safe_load_all(text))
    documents[0]["defaultPipelineRoot"] = pipeline_root
    if spans:
        documents[0]["root"]["dag"]["tasks"]["ImportExampleGen"]["cachingOptions"] = {
            "enableCache": False}
    with open(package, "w") as f:
        f.write(header)
        yaml.dump_all(documents, f, sort_keys=True)


def submit(spec_path: str, args: argparse.Namespace) -> str:
    """Submits the compiled spec to Vertex AI Pipelines; returns the job's resource name."""
    import google.auth
    import google.auth.exceptions
    from google.cloud import aiplatform

    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise RuntimeError(
            "no Google Cloud credentials found; run `gcloud auth application-default login` "
            f"or set GOOGLE_APPLICATION_CREDENTIALS ({err.__class__.__name__})") from None
    aiplatform.init(project=args.project, location=args.region)
    job = aiplatform.PipelineJob(display_name="pets-unet-segmentation", template_path=spec_path,
                                 pipeline_root=args.pipeline_root, enable_caching=True)
    if args.schedule:
        # One run at a time: a run still training when the next is due makes that one wait.
        schedule = job.create_schedule(cron=args.schedule,
                                       display_name="pets-unet-segmentation schedule",
                                       max_concurrent_run_count=1, allow_queueing=True)
        return schedule.resource_name
    job.submit()
    return job.resource_name


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = _missing(args)
    if missing:
        print(f"error: missing {', '.join(missing)} (flags or their environment variables; "
              "see --help)", file=sys.stderr)
        return 2
    try:
        for flag, value in (("--epochs", args.epochs), ("--tune-trials", args.tune_trials),
                            ("--tune-epochs", args.tune_epochs),
                            ("--window-spans", args.window_spans)):
            preflight.check_count(flag, value)
        settings(args)
        spans.check_span_flags(args, bool(span_layout(args)), "--data-root", "--span-layout")
        beam_options.check_args(beam_pipeline_args(args))
        if (args.tune_trials or args.tune_epochs) and not args.tune:
            raise ValueError("--tune-trials and --tune-epochs set the Tuner's budget; "
                             "add --tune to run it")
        resolve_target(args)
        if args.schedule:
            if not args.submit:
                raise ValueError("--schedule creates a Vertex AI schedule when submitting; add "
                                 "--submit (for Kubeflow, see README: a recurring run)")
            check_cron(args.schedule)
        if args.vertex_replica_count < 1:
            raise ValueError(f"--vertex-replica-count must be at least 1, got "
                             f"{args.vertex_replica_count}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    spec = compile_pipeline(args)
    print(f"Compiled {resolve_target(args)[0]} package: {spec}")
    if args.submit:
        try:
            what = "schedule" if args.schedule else "pipeline job"
            print(f"Submitted Vertex AI {what}: {submit(spec, args)}")
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
