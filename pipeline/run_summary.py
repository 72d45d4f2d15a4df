"""What a finished run produced, read back from ML Metadata and TFMA's own result files.

TFX records every artifact of a run in MLMD; this module only looks them up for one run (its
`pipeline_run` context, by run id: the local runner sets its own; or the newest) and formats the
facts a person asks first: where the pushed model, the evaluation and the TensorBoard logs are,
whether the model was blessed, and its metrics on the test split.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma

from components.report_page import (read_data_checks, read_start, read_tuner_results,
                                    read_window, slice_metrics, validation_failures)
from components.search_tuner import trials_logdir
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

HEADLINE_METRICS = ("pixel_accuracy", "mean_iou", "iou_pet", "iou_background", "iou_border")


@dataclasses.dataclass
class RunSummary:
    run_id: str
    executions: Dict[str, str]  # component id -> state (COMPLETE, CACHED, ...)
    seconds: Dict[str, float]  # component id -> wall time of its execution
    artifact_uris: Dict[str, str]  # artifact type -> uri
    outputs: Dict[str, Dict[str, str]]  # component id -> output key -> uri
    inputs: Dict[str, Dict[str, str]]  # component id -> input key -> uri
    blessed: Optional[bool]
    pushed: Optional[bool]
    pushed_destination: Optional[str]
    data_checks: Optional[dict]  # ExampleQuarantine: checked, quarantined, reasons, uri
    metrics: Dict[str, float]  # overall slice, on the test split
    validation_failures: List[str]
    trials: Optional[List[dict]] = None  # the Tuner's, best first, when the run was tuned
    window: Optional[dict] = None  # SpanWindow's window.json, for a data folder of spans
    start: Optional[dict] = None  # the Trainer's warm start record (model_code.warm_start)

    def format(self, components: bool = True) -> str:
        """The printout; `components=False` leaves out the per-component states (a console
        that has shown them as they finished)."""
        lines = [f"Run {self.run_id}:"]
        if components:
            lines += [f"  {component:32s} {state}"
                      for component, state in self.executions.items()]
        if self.data_checks:
            checks = self.data_checks
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(checks["reasons"].items()))
            lines.append(f"Data checks: {checks['checked']} examples checked, "
                         f"{checks['quarantined']} quarantined" +
                         (f" ({reasons}; see {checks['uri']})" if reasons else ""))
        lines += self._span_lines()
        if self.trials:
            best = self.trials[0]
            values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in best.items() if k not in ("trial_id", "score"))
            lines.append(f"Tuning: best of {len(self.trials)} trials: {values} (validation "
                         f"mean IoU {best['score']:.4f}); the Trainer used these")
        if self.metrics:
            lines.append("Test-split metrics (TFMA, overall; change vs blessed baseline):")
            for name in HEADLINE_METRICS:
                if name in self.metrics:
                    diff = self.metrics.get(f"{name}_diff")
                    change = "" if diff is None else f"   ({diff:+.4f})"
                    lines.append(f"  {name:32s} {self.metrics[name]:.4f}{change}")
        verdict = {True: "BLESSED", False: "NOT BLESSED", None: "not evaluated"}[self.blessed]
        lines.append(f"Model: {verdict}")
        lines += [f"  - {failure}" for failure in self.validation_failures]
        if self.pushed:
            lines.append(f"Pushed model:        {self.pushed_destination}")
        else:
            lines.append("Pushed model:        none (the model was not pushed)")
        for label, kind in (("Evaluation output:", "ModelEvaluation"),
                            ("TensorBoard logs:", "ModelRun")):
            if kind in self.artifact_uris:
                lines.append(f"{label:20s} {self.artifact_uris[kind]}")
        tuner_results = self.outputs.get("Tuner", {}).get("tuner_results")
        if tuner_results:
            lines.append(f"{'Trials (HParams):':20s} "
                         f"tensorboard --logdir {trials_logdir(tuner_results)}")
        if self.report_path:
            lines.append(f"{'Evaluation report:':20s} {self.report_path}")
        return "\n".join(lines)

    def _span_lines(self) -> List[str]:
        if not self.window:
            return []
        window = self.window
        counts = ", ".join(f"span {span}: {c.get('train', 0)} train" for span, c in
                           window["counts"].items())
        lines = [f"Spans: ingested span {window['span']}; trained on spans "
                 f"{', '.join(map(str, window['window']))} ({counts})"]
        if self.executions.get("SpanWindow") == "CACHED":
            lines.append(f"  (span {window['span']}'s data steps came from the cache: an "
                         "earlier run ingested it)")
        drifted = [d for d in window["drift"] if d["drifted"]]
        lines.append(f"Drift: {window['drift_summary']}" + (
            f" [{window['drift_action']}]" if drifted else ""))
        if self.start:
            lines.append("Warm start: from " + self.start["from"] if self.start["warm"]
                         else f"Cold start: {self.start['reason']}")
        return lines

    @property
    def report_path(self) -> Optional[str]:
        """The EvaluationReport component's HTML file, when this run wrote one."""
        return self.outputs.get("EvaluationReport", {}).get("report")


def overall_metrics(evaluation_uri: str) -> Dict[str, float]:
    return slice_metrics(tfma.load_eval_result(evaluation_uri)).get((), {})


@dataclasses.dataclass(frozen=True)
class Ingested:
    """What the newest completed run trained on: its span, the span's fingerprint, and the
    configuration its Trainer received."""

    run_id: str
    span: int
    fingerprint: str
    trainer_config: str
    tuned: bool
    push_destination: str


def last_completed_run(metadata_path: str) -> Optional[Ingested]:
    """The newest run whose EvaluationReport and Pusher completed (or came from the cache),
    or None."""
    if not os.path.isfile(metadata_path):
        return None
    store = _open(metadata_path)
    node_type = store.get_context_type("node").id
    runs = sorted(store.get_contexts_by_type("pipeline_run"),
                  key=lambda context: (context.create_time_since_epoch, context.id),
                  reverse=True)
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    for run in runs:
        nodes = {}
        for execution in store.get_executions_by_context(run.id):
            names = [c.name.split(".", 1)[-1] for c in
                     store.get_contexts_by_execution(execution.id) if c.type_id == node_type]
            if names:
                nodes[names[0]] = execution
        report, example_gen, trainer, pusher = (nodes.get(name) for name in (
            "EvaluationReport", "ImportExampleGen", "Trainer", "Pusher"))
        if not (report and example_gen and trainer and pusher) or any(
                node.last_known_state not in done for node in (report, pusher)):
            continue
        events = store.get_events_by_execution_ids([example_gen.id])
        outputs = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
        if not outputs:
            continue
        examples = store.get_artifacts_by_id(outputs[:1])[0]
        props = examples.custom_properties
        return Ingested(
            run_id=run.name,
            span=int(props["span"].int_value) if "span" in props else 0,
            fingerprint=props["input_fingerprint"].string_value
            if "input_fingerprint" in props else "",
            trainer_config=trainer.custom_properties["custom_config"].string_value
            if "custom_config" in trainer.custom_properties else "",
            tuned="Tuner" in nodes,
            push_destination=pusher.custom_properties["push_destination"].string_value
            if "push_destination" in pusher.custom_properties else "")
    return None


def _open(metadata_path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def summarize_latest_run(metadata_path: str) -> RunSummary:
    return summarize_run(metadata_path)


def summarize_run(metadata_path: str, run_id: Optional[str] = None) -> RunSummary:
    """The run named `run_id` (a LocalDagRunner timestamp), or the newest run."""
    if not os.path.isfile(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}")
    store = _open(metadata_path)
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        raise RuntimeError(f"no pipeline run recorded in {metadata_path}")
    if run_id in (None, "latest"):
        run = max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    else:
        matching = [context for context in runs if context.name == run_id]
        if not matching:
            known = ", ".join(sorted(context.name for context in runs)[-5:])
            raise ValueError(f"no run {run_id!r} in {metadata_path}; latest runs: {known}")
        run = matching[0]

    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    node_type = store.get_context_type("node").id
    states, seconds, node_of = {}, {}, {}
    for execution in executions:
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
                 if c.type_id == node_type]
        node_id = nodes[0].split(".", 1)[-1] if nodes else str(execution.type_id)
        states[node_id] = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        seconds[node_id] = (execution.last_update_time_since_epoch -
                            execution.create_time_since_epoch) / 1000
        node_of[execution.id] = node_id
    events = store.get_events_by_execution_ids([e.id for e in executions])
    by_id = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    outputs: Dict[str, Dict[str, str]] = {}
    inputs: Dict[str, Dict[str, str]] = {}
    artifacts = {}
    for event in events:
        artifact = by_id[event.artifact_id]
        key = event.path.steps[0].key if event.path.steps else type_names[artifact.type_id]
        node = node_of[event.execution_id]
        if event.type == metadata_store_pb2.Event.OUTPUT:
            outputs.setdefault(node, {})[key] = artifact.uri
            artifacts[type_names[artifact.type_id]] = artifact
        elif event.type == metadata_store_pb2.Event.INPUT:
            inputs.setdefault(node, {})[key] = artifact.uri

    def prop(artifact_type, name):
        artifact = artifacts.get(artifact_type)
        if artifact is None or name not in artifact.custom_properties:
            return None
        value = artifact.custom_properties[name]
        return value.string_value if value.HasField("string_value") else value.int_value

    evaluation_uri = artifacts["ModelEvaluation"].uri if "ModelEvaluation" in artifacts else None
    data_checks = read_data_checks(outputs.get("ExampleQuarantine", {}).get("quarantine"))
    blessed = prop("ModelBlessing", "blessed")
    pushed = prop("PushedModel", "pushed")
    return RunSummary(
        run_id=run.name,
        executions=states,
        seconds=seconds,
        artifact_uris={name: artifact.uri for name, artifact in artifacts.items()},
        outputs=outputs,
        inputs=inputs,
        blessed=None if blessed is None else bool(blessed),
        pushed=None if pushed is None else bool(pushed),
        pushed_destination=prop("PushedModel", "pushed_destination"),
        data_checks=data_checks,
        metrics=overall_metrics(evaluation_uri) if evaluation_uri else {},
        validation_failures=validation_failures(evaluation_uri) if evaluation_uri else [],
        trials=read_tuner_results(outputs.get("Tuner", {}).get("tuner_results")),
        window=read_window(outputs.get("SpanWindow", {}).get("window")),
        start=read_start(outputs.get("Trainer", {}).get("model")),
    )

