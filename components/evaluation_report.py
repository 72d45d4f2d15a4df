"""EvaluationReport: writes the run's evaluation report, one HTML file, as a pipeline artifact.

It runs inside the pipeline, after the Evaluator, on every orchestrator. Its output's type is
`system.HTML`, which Vertex AI's "View HTML" and the Kubeflow Pipelines UI display as a page; the
artifact is a single file at its URI. Everything comes from the input artifacts' folders (see
components.report_page), never from the ML Metadata database, which clusters do not expose.
"""
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.report_page import ReportInputs, read_blessing, write_page
from pets_unet import HtmlReport, Quarantine


@tfx.dsl.components.component
def EvaluationReport(  # noqa: N802 - TFX component names are classes
    evaluation: tfx.dsl.components.InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    model_run: tfx.dsl.components.InputArtifact[standard_artifacts.ModelRun],
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    quarantine: tfx.dsl.components.InputArtifact[Quarantine],
    report: tfx.dsl.components.OutputArtifact[HtmlReport],
    split: tfx.dsl.components.Parameter[str] = "test",
    note: tfx.dsl.components.Parameter[str] = "",
    tuner_results: tfx.dsl.components.InputArtifact[standard_artifacts.TunerResults] = None,
    window: tfx.dsl.components.InputArtifact[standard_artifacts.Examples] = None,
) -> None:
    write_page(ReportInputs(
        evaluation_uri=evaluation.uri,
        blessing_uri=blessing.uri,
        model_uri=model.uri,
        model_run_uri=model_run.uri,
        examples_uri=examples.uri,
        quarantine_uri=quarantine.uri,
        split=split,
        note=note,
        tuner_results_uri=tuner_results.uri if tuner_results else None,
        window_uri=window.uri if window else None,
    ), report.uri)
    report.set_int_custom_property("blessed", int(bool(read_blessing(blessing.uri))))
