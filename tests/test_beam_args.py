"""Beam options: the local runner's mode choice, and every Beam step gets the runner's options.

The Beam-based steps are the ones TFX runs through Beam (ImportExampleGen, ExampleQuarantine,
StatisticsGen, Transform, Evaluator); both runners must hand each of them the same options, or a
Dataflow/Flink/Spark run would silently keep some steps on the local DirectRunner.
"""
import json
import os
import tempfile

from tfx.dsl.compiler import compiler
from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

import kubeflow_runner
import local_runner
from model_code.config import get_preset
from pipeline import beam_options

BEAM_STEPS = {"ImportExampleGen", "ExampleQuarantine", "StatisticsGen", "Transform", "Evaluator"}
USER_ARGS = ["--beam-arg=--max_num_workers=8", "--beam-arg=--experiments=shuffle_mode=service"]


def test_auto_is_in_memory_for_small_inputs_and_parallel_for_large_ones():
    small = beam_options.MULTI_PROCESSING_FROM - 1
    assert beam_options.choose("auto", small, cpus=2)[0] == "in_memory"
    assert beam_options.choose("auto", None, cpus=2)[0] == "in_memory"
    assert beam_options.choose("auto", 7349, cpus=2)[0] == "in_memory"  # Oxford Pets' size
    assert beam_options.choose("auto", 22047, cpus=2) == ("multi_processing",
                                                         "22,047 examples, 2 CPUs")
    assert beam_options.choose("auto", 22047, cpus=1) == ("in_memory", "one CPU")
    assert beam_options.choose("multi_processing", 10, cpus=2)[0] == "multi_processing"
    assert "--direct_num_workers=4" in beam_options.direct_runner_args("multi_processing", cpus=4)
    assert "--direct_running_mode=in_memory" in beam_options.direct_runner_args("in_memory")


def test_tfx_builds_no_sdist_of_itself_for_direct_runner_steps(tmp_path, monkeypatch):
    """Without a dependency option every TFX Beam executor packages TFX into the temp dir."""
    from tfx.utils import dependency_utils

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    container = kubeflow_runner.beam_pipeline_args(kubeflow_runner.parse_args(
        ["--pipeline-root", "gs://bucket/root", "--image", "pets-unet:test"]))
    for args in (*map(beam_options.direct_runner_args, ("in_memory", "multi_processing")),
                 container):
        assert dependency_utils.make_beam_dependency_flags(args) == args
    assert os.path.isfile(beam_options.SETUP_FILE) and not os.listdir(tmp_path)
    dependency_utils.make_beam_dependency_flags(["--runner=DirectRunner"])  # TFX's default
    assert os.listdir(tmp_path)


def _local_beam_args(tmp_path, argv, mode):
    args = local_runner.parse_args(argv)
    pipeline = local_runner.build_pipeline(
        args, get_preset("smoke"), str(tmp_path / "data"), mode, str(tmp_path / "root"),
        str(tmp_path / "serving"), str(tmp_path / "metadata.sqlite"))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    compiler.Compiler().compile(pipeline).deployment_config.Unpack(deployment)
    found = {}
    for node, spec in deployment.executor_specs.items():
        beam = executable_spec_pb2.BeamExecutableSpec()
        if spec.Is(beam.DESCRIPTOR):
            spec.Unpack(beam)
            found[node] = list(beam.beam_pipeline_args)
    return found


def _compiled_beam_args(tmp_path, argv):
    package = str(tmp_path / "pipeline.json")
    assert kubeflow_runner.main(["--pipeline-root", "gs://bucket/root", "--data-root",
                                 "gs://bucket/pets", "--image", "pets-unet:test", "--preset",
                                 "smoke", "--output", package, *argv]) == 0
    executors = json.load(open(package))["pipelineSpec"]["deploymentSpec"]["executors"]
    found = {}
    for name, executor in executors.items():
        args = executor.get("container", {}).get("args", [])
        # TFX appends the Beam options after the step's own flags.
        extra = args[args.index("--json_serialized_inputs_spec_args") + 2:] if args else []
        if extra:
            found[name.removesuffix("_executor")] = extra
    return found


def test_every_beam_step_gets_the_same_options_on_both_runners(tmp_path):
    for mode in ("in_memory", "multi_processing"):
        local = _local_beam_args(tmp_path, ["--tune", *USER_ARGS], mode)
        expected = [*beam_options.direct_runner_args(mode), "--max_num_workers=8",
                    "--experiments=shuffle_mode=service"]
        assert local == {step: expected for step in BEAM_STEPS}

    for runner in ("DirectRunner", "DataflowRunner"):
        argv = ["--tune", "--beam-runner", runner, "--project", "p", *USER_ARGS]
        compiled = _compiled_beam_args(tmp_path, argv)
        expected = kubeflow_runner.beam_pipeline_args(kubeflow_runner.parse_args(
            argv + ["--pipeline-root", "gs://bucket/root", "--image", "pets-unet:test"]))
        assert expected[0] == f"--runner={runner}" and expected[-2:] == [
            "--max_num_workers=8", "--experiments=shuffle_mode=service"]
        # TFX's KFP compiler gives every container the options; the others ignore them.
        assert set(compiled) >= BEAM_STEPS
        assert all(args == expected for args in compiled.values()), compiled
