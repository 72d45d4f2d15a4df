"""The pipeline's DAG, built in one function that every runner uses.

ImportExampleGen -> ExampleQuarantine -> StatisticsGen -> SchemaGen -> ExampleValidator
-> Transform -> [Tuner, with --tune] -> Trainer -> (Resolver: latest blessed model) -> Evaluator
-> Pusher, and EvaluationReport (the HTML report, as an artifact) after the Evaluator.

For a data folder of spans (`span-N/`, pipeline.spans) ImportExampleGen ingests the newest span,
Transform transforms it alone, SpanWindow (after Transform) checks it for drift and gives the
Tuner and Trainer the newest spans' transformed examples as one window, and the Trainer warm-starts from the latest blessed model (the Resolver's output, which
the Evaluator compares with) unless the configuration says never.

Component code is referenced by installed module paths (`model_code.trainer.run_fn`, ...), not by
`module_file`, so it resolves the same way from any working directory and in a container image.
"""
from __future__ import annotations

import dataclasses
import json
from typing import List, NamedTuple, Optional

from tfx import v1 as tfx

from components.atomic_pusher import AtomicPusher
from components.evaluation_report import EvaluationReport
from components.example_quarantine import ExampleQuarantine
from components.search_tuner import SearchTuner
from components.span_window import SpanWindow
from model_code.config import PREPROCESSING_FIELDS, Config
from pipeline.dataset import TFRECORD_PATTERN
from pipeline.evaluation import EVAL_SPLIT, eval_config

PIPELINE_NAME = "pets-unet-segmentation"
PREPROCESSING_FN = "model_code.preprocessing.preprocessing_fn"
RUN_FN = "model_code.trainer.run_fn"
TUNER_FN = "model_code.tuner.tuner_fn"


@dataclasses.dataclass(frozen=True)
class VertexTraining:
    """Run the Trainer as a Vertex AI custom training job instead of in the pipeline's pod."""

    project: str
    region: str
    image: str  # the pipeline image; it has this package installed
    machine_type: str = "n1-standard-8"
    accelerator_type: Optional[str] = None  # e.g. "NVIDIA_TESLA_T4"
    accelerator_count: int = 0
    replica_count: int = 1  # machines; more than one trains synchronously on all of them

    def custom_config(self) -> dict:
        """Vertex AI sets TF_CONFIG on every replica (pool 0: the chief, pool 1: the workers),
        from which run_fn picks MultiWorkerMirroredStrategy (model_code.distribution)."""
        if self.replica_count < 1:
            raise ValueError(f"replica count must be at least 1, got {self.replica_count}")
        machine_spec = {"machine_type": self.machine_type}
        if self.accelerator_type:
            machine_spec.update(accelerator_type=self.accelerator_type,
                                accelerator_count=max(1, self.accelerator_count))
        pool = {"machine_spec": machine_spec, "container_spec": {"image_uri": self.image}}
        pools = [dict(pool, replica_count=1)]
        if self.replica_count > 1:
            pools.append(dict(pool, replica_count=self.replica_count - 1))
        vertex = tfx.extensions.google_cloud_ai_platform
        return {
            vertex.ENABLE_VERTEX_KEY: True,
            vertex.VERTEX_REGION_KEY: self.region,
            vertex.TRAINING_ARGS_KEY: {"project": self.project, "worker_pool_specs": pools},
        }


def import_example_gen(data_root: str, config: Config, pattern: str = TFRECORD_PATTERN):
    """ImportExampleGen over a folder of TFDS-format TFRecords (`pattern` below `data_root`;
    with TFX's `{SPAN}` in it, the newest span's).

    Both TFDS splits go in as one; the tutorial's 80/10/10 re-split is a hash of file_name.
    """
    return tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="all", pattern=pattern)]),
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in config.split_buckets],
            partition_feature_name="file_name")))


@dataclasses.dataclass(frozen=True)
class Spans:
    """A data folder of spans: ImportExampleGen's pattern (with `{SPAN}`, pipeline.spans) and
    the folder where SpanWindow remembers the spans it has seen."""

    pattern: str
    store: str


class DataComponents(NamedTuple):
    """The data half of the DAG, up to and including Transform, in pipeline order."""

    example_gen: object
    quarantine: object
    statistics_gen: object
    schema_gen: object
    example_validator: object
    transform: object
    span_window: Optional[object]  # only for a data folder of spans

    @property
    def training_examples(self):
        """What the Tuner and Trainer read: the window of spans' transformed examples, or
        Transform's."""
        if self.span_window:
            return self.span_window.outputs["window"]
        return self.transform.outputs["transformed_examples"]

    def components(self) -> list:
        return [component for component in self if component is not None]


def data_components(data_root: str, config: Config,
                    spans: Optional[Spans] = None) -> DataComponents:
    example_gen = import_example_gen(data_root, config,
                                     spans.pattern if spans else TFRECORD_PATTERN)
    quarantine = ExampleQuarantine(examples=example_gen.outputs["examples"],
                                   max_bad_fraction=config.max_bad_fraction)
    examples = quarantine.outputs["clean_examples"]
    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=config.as_custom_config(PREPROCESSING_FIELDS),
        # Statistics over 30,000 floats per image cost minutes and tell nothing StatisticsGen
        # does not already say about the raw data.
        disable_statistics=True)
    span_window = SpanWindow(
        examples=examples,
        statistics=statistics_gen.outputs["statistics"],
        transformed_examples=transform.outputs["transformed_examples"],
        span_store=spans.store,
        window_spans=config.window_spans,
        drift_thresholds=json.dumps(dict(config.drift_thresholds)),
        drift_action=config.drift_action) if spans else None
    return DataComponents(example_gen, quarantine, statistics_gen, schema_gen,
                          example_validator, transform, span_window)


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_dir: str,
    config: Config,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
    vertex_training: Optional[VertexTraining] = None,
    resolve_baseline: bool = True,
    report_note: str = "",
    tune: bool = False,
    spans: Optional[Spans] = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline. `data_root` is a folder of Oxford-Pets TFRecords (TFDS format).

    `beam_pipeline_args` reach every Beam-based component (ExampleGen, StatisticsGen, Transform,
    Evaluator), which is how they scale out to Dataflow, Flink or Spark.
    `resolve_baseline=False` leaves out the latest-blessed-model Resolver, for orchestrators that
    cannot run one (Kubeflow Pipelines' open-source backend); the Evaluator then gates on the
    absolute thresholds only. `report_note` is said first in the evaluation report.
    `tune=True` adds TFX's Tuner (`config.tuning`), whose best hyperparameters the Trainer uses.
    `spans`: `data_root` holds span folders (module docstring).
    """
    data = data_components(data_root, config, spans)
    examples = data.quarantine.outputs["clean_examples"]
    schema = data.schema_gen.outputs["schema"]
    transform = data.transform

    train_args = tfx.proto.TrainArgs(splits=["train"])
    eval_args = tfx.proto.EvalArgs(splits=["eval"])
    tuner = SearchTuner(  # TFX's Tuner, keeping its trials' logs
        tuner_fn=TUNER_FN,
        examples=data.training_examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=train_args,
        eval_args=eval_args,
        custom_config=config.as_custom_config()).with_id("Tuner") if tune else None

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver") if resolve_baseline else None
    base_model = (model_resolver.outputs["model"]  # warm start
                  if model_resolver and spans and config.warm_start == "auto" else None)

    trainer_class = tfx.components.Trainer
    trainer_config = config.as_custom_config(config.without_tuning())
    if vertex_training:
        trainer_class = tfx.extensions.google_cloud_ai_platform.Trainer
        trainer_config.update(vertex_training.custom_config())
    trainer = trainer_class(
        run_fn=RUN_FN,
        examples=data.training_examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        base_model=base_model,
        train_args=train_args,
        eval_args=eval_args,
        custom_config=trainer_config)

    evaluator = tfx.components.Evaluator(
        examples=examples,
        example_splits=[EVAL_SPLIT],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        eval_config=eval_config(config))

    pusher = AtomicPusher(  # TFX's Pusher, writing each version elsewhere first
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)),
    ).with_id("Pusher")

    report = EvaluationReport(
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"],
        model=trainer.outputs["model"],
        model_run=trainer.outputs["model_run"],
        examples=examples,
        quarantine=data.quarantine.outputs["quarantine"],
        split=EVAL_SPLIT,
        note=report_note,
        tuner_results=tuner.outputs["tuner_results"] if tuner else None,
        window=data.span_window.outputs["window"] if data.span_window else None)

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[*data.components(), *([tuner] if tuner else []), trainer,
                    *([model_resolver] if model_resolver else []), evaluator, pusher, report],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [])
