"""Re-renders the evaluation report of any earlier local run, found through ML Metadata.

    python -m pipeline.report --pipeline-root outputs/demo/pipeline_root [--run latest|RUN_ID] \\
        [--metadata-path outputs/demo/metadata.sqlite] --out outputs/demo/report

Every run already holds its report as the EvaluationReport component's artifact; this command
renders it again (for an older run, or after changing the page) from the same artifact folders,
looked up in the local MLMD store, and adds what only the finished run knows: where the model was
pushed.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from components.report_page import ReportInputs, write_page
from pipeline.evaluation import EVAL_SPLIT
from pipeline.run_summary import RunSummary, summarize_run


def report_inputs(summary: RunSummary) -> ReportInputs:
    """The artifact folders of a run recorded in MLMD."""
    evaluator = summary.outputs.get("Evaluator", {})
    if "evaluation" not in evaluator:
        raise ValueError(f"run {summary.run_id} has no Evaluator output (did it fail earlier?)")
    trainer = summary.outputs.get("Trainer", {})
    return ReportInputs(
        evaluation_uri=evaluator["evaluation"],
        blessing_uri=evaluator.get("blessing"),
        model_uri=trainer.get("model"),
        model_run_uri=trainer.get("model_run"),
        examples_uri=summary.inputs.get("Evaluator", {}).get("examples"),
        quarantine_uri=summary.outputs.get("ExampleQuarantine", {}).get("quarantine"),
        split=EVAL_SPLIT,
        tuner_results_uri=summary.outputs.get("Tuner", {}).get("tuner_results"),
        window_uri=summary.outputs.get("SpanWindow", {}).get("window"),
        title=summary.run_id,
        pushed=bool(summary.pushed),
        pushed_destination=summary.pushed_destination if summary.pushed else None)


def write_report(metadata_path: str, out_dir: str, run_id: Optional[str] = None) -> str:
    return write_page(report_inputs(summarize_run(metadata_path, run_id)),
                      os.path.join(out_dir, "index.html"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--metadata-path", help="default: metadata.sqlite beside the pipeline root")
    parser.add_argument("--run", default="latest", help="'latest' or a run id")
    parser.add_argument("--out", required=True, help="folder for index.html")
    args = parser.parse_args(argv)
    metadata_path = args.metadata_path or os.path.join(
        os.path.dirname(os.path.abspath(args.pipeline_root)), "metadata.sqlite")
    try:
        path = write_report(metadata_path, args.out, args.run)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
