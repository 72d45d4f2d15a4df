"""TFX's Tuner, keeping the search's folder (trials, TensorBoard logs) in its output artifact.

TFX's Tuner executor searches in a temporary folder that is deleted afterwards, and prints
KerasTuner's search-space and results tables. This executor runs TFX's own `search` and
`write_best_hyperparameters` unchanged, but in `<tuner_results>/search/`, so that
`tensorboard --logdir <tuner_results>/search/tensorboard` shows every trial in the HParams
dashboard after the run, on a laptop and on a cluster alike; each trial prints one line instead.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

from tfx.components.tuner import component as tfx_tuner
from tfx.components.tuner import executor as tuner_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs

from model_code.hyperparameters import TRIAL_LOGS

SEARCH_FOLDER = "search"


def search_dir(tuner_results_uri: str) -> str:
    return os.path.join(tuner_results_uri, SEARCH_FOLDER)


def trials_logdir(tuner_results_uri: str) -> str:
    """The folder to give `tensorboard --logdir` for the HParams dashboard of a search."""
    return os.path.join(search_dir(tuner_results_uri), TRIAL_LOGS)


class SearchTunerExecutor(tuner_executor.Executor):
    """Searches in the tuner_results artifact's folder instead of a temporary one."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs (parallel trials) is not supported by this Tuner")
        results_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        tuner = tuner_executor.search(input_dict, exec_properties, search_dir(results_uri),
                                      print_tuning_summary=False)
        tuner_executor.write_best_hyperparameters(tuner, output_dict)


class SearchTuner(tfx_tuner.Tuner):
    """TFX's Tuner with SearchTunerExecutor; same inputs, outputs and parameters."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(SearchTunerExecutor)
