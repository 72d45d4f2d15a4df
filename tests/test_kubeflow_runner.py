"""Compiling for Kubeflow Pipelines / Vertex AI: offline checks of the generated packages."""
import json
import os
import re

import pytest

import kubeflow_runner
from model_code.config import SEED
from pipeline.pipeline import create_pipeline

IMAGE = "europe-west4-docker.pkg.dev/my-project/pipelines/pets-unet:1.0"
BASE_ARGS = ["--pipeline-root", "gs://bucket/root", "--data-root", "gs://bucket/pets/4.0.0",
             "--image", IMAGE]
EXPECTED_DEPENDENCIES = {
    "ImportExampleGen": set(),
    "ExampleQuarantine": {"ImportExampleGen"},
    "StatisticsGen": {"ExampleQuarantine"},
    "SchemaGen": {"StatisticsGen"},
    "ExampleValidator": {"StatisticsGen", "SchemaGen"},
    "Transform": {"ExampleQuarantine", "SchemaGen"},
    "Trainer": {"Transform", "SchemaGen"},
    "Evaluator": {"ExampleQuarantine", "Trainer",
                  "latest_blessed_model_resolver-model-resolver"},
    "Pusher": {"Trainer", "Evaluator"},
    "EvaluationReport": {"Evaluator", "ExampleQuarantine", "Trainer"},
}


def _compile(tmp_path, *extra):
    output = str(tmp_path / "pipeline.json")
    assert kubeflow_runner.main(BASE_ARGS + ["--output", output, *extra]) == 0
    with open(output) as f:
        return json.load(f)["pipelineSpec"]


def _executor(spec, task):
    label = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    executor = spec["components"][label]["executorLabel"]
    return spec["deploymentSpec"]["executors"][executor]["container"]


def _parameter(spec, task, name):
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]
    return value["constant"]  # pipeline spec 2.1: a plain JSON value


@pytest.fixture(scope="module")
def default_spec(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("kfp"))


def test_dag_has_every_component_with_its_dependencies(default_spec):
    tasks = default_spec["root"]["dag"]["tasks"]
    for task, dependencies in EXPECTED_DEPENDENCIES.items():
        assert set(tasks[task].get("dependentTasks", [])) == dependencies, task


def test_every_container_uses_the_configured_image(default_spec):
    executors = default_spec["deploymentSpec"]["executors"].values()
    containers = [executor["container"] for executor in executors if "container" in executor]
    assert len(containers) == len(EXPECTED_DEPENDENCIES)  # every component but the Resolver
    assert {container["image"] for container in containers} == {IMAGE}


def test_component_code_is_referenced_by_installed_module_path(default_spec):
    assert _parameter(default_spec, "Trainer", "run_fn") == "model_code.trainer.run_fn"
    assert _parameter(default_spec, "Transform", "preprocessing_fn") == \
        "model_code.preprocessing.preprocessing_fn"
    trainer_config = json.loads(_parameter(default_spec, "Trainer", "custom_config"))
    assert trainer_config["pets_unet_config"]["num_filters_start"] == SEED.num_filters_start


def test_tune_puts_tfx_tuner_between_transform_and_trainer(default_spec, tmp_path):
    assert "Tuner" not in default_spec["root"]["dag"]["tasks"]
    assert "hyperparameters" not in default_spec["root"]["dag"]["tasks"]["Trainer"]["inputs"][
        "artifacts"]
    spec = _compile(tmp_path, "--tune", "--tune-trials", "5", "--tune-epochs", "2")
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks["Tuner"]["dependentTasks"]) == {"Transform", "SchemaGen"}
    assert "Tuner" in tasks["Trainer"]["dependentTasks"]
    handed = tasks["Trainer"]["inputs"]["artifacts"]["hyperparameters"]["taskOutputArtifact"]
    assert handed == {"producerTask": "Tuner", "outputArtifactKey": "best_hyperparameters"}
    trials = tasks["EvaluationReport"]["inputs"]["artifacts"]["tuner_results"]
    assert trials["taskOutputArtifact"]["producerTask"] == "Tuner"
    assert _parameter(spec, "Tuner", "tuner_fn") == "model_code.tuner.tuner_fn"
    assert "components.search_tuner.SearchTunerExecutor" in _executor(spec, "Tuner")["args"]
    tuning = json.loads(_parameter(spec, "Tuner", "custom_config"))["pets_unet_config"]["tuning"]
    assert (tuning["max_trials"], tuning["epochs_per_trial"]) == (5, 2)
    trainer = json.loads(_parameter(spec, "Trainer", "custom_config"))["pets_unet_config"]
    assert "tuning" not in trainer  # a new budget does not invalidate the Trainer's cache


def test_dataflow_and_vertex_training_are_wired_where_configured(tmp_path):
    spec = _compile(tmp_path, "--project", "my-project", "--region", "europe-west4",
                    "--beam-runner", "DataflowRunner", "--beam-arg=--max_num_workers=8",
                    "--vertex-training", "--vertex-machine-type", "n1-highmem-16",
                    "--vertex-accelerator-type", "NVIDIA_TESLA_T4")
    for task in ("StatisticsGen", "Transform", "Evaluator"):
        args = _executor(spec, task)["args"]
        assert "--runner=DataflowRunner" in args and "--max_num_workers=8" in args
        assert "--temp_location=gs://bucket/root/beam_tmp" in args
        assert f"--sdk_container_image={IMAGE}" in args
    trainer = _executor(spec, "Trainer")
    assert any("google_cloud_ai_platform" in arg for arg in trainer["args"])
    custom = json.loads(_parameter(spec, "Trainer", "custom_config"))
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    pool = custom["ai_platform_training_args"]["worker_pool_specs"][0]
    assert pool["machine_spec"]["machine_type"] == "n1-highmem-16"
    assert pool["machine_spec"]["accelerator_type"] == "NVIDIA_TESLA_T4"
    assert pool["container_spec"]["image_uri"] == IMAGE


def test_compiled_and_local_pipelines_come_from_the_same_function(default_spec, tmp_path):
    local = create_pipeline(pipeline_name="x", pipeline_root=str(tmp_path), data_root="data",
                            serving_dir=str(tmp_path), config=SEED)
    local_ids = {component.id for component in local.components}
    compiled_ids = set(default_spec["root"]["dag"]["tasks"])
    # KFP splits the Resolver into one task per resolved channel.
    compiled_ids = {task.split("-")[0] for task in compiled_ids}
    assert compiled_ids == local_ids


def test_missing_settings_are_named(capsys, monkeypatch):
    for name in ("PIPELINE_ROOT", "DATA_ROOT", "PIPELINE_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    assert kubeflow_runner.main(["--data-root", "gs://b/d"]) == 2
    err = capsys.readouterr().err
    assert "--pipeline-root" in err and "--image" in err and "--data-root" not in err


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPELINE_ROOT", "gs://env/root")
    monkeypatch.setenv("DATA_ROOT", "gs://env/data")
    monkeypatch.setenv("PIPELINE_IMAGE", IMAGE)
    monkeypatch.setenv("PRESET", "demo")
    args = kubeflow_runner.parse_args([])
    assert (args.pipeline_root, args.data_root, args.image, args.preset) == \
        ("gs://env/root", "gs://env/data", IMAGE, "demo")


def test_submit_without_credentials_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # do not probe the GCE metadata server
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    output = str(tmp_path / "pipeline.json")
    code = kubeflow_runner.main(BASE_ARGS + ["--output", output, "--project", "p", "--submit"])
    assert code == 2
    assert os.path.exists(output)
    assert "no Google Cloud credentials found" in capsys.readouterr().err


def test_vertex_package_loads_in_the_vertex_ai_client(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    package = str(tmp_path / "pipeline.json")
    assert kubeflow_runner.main(BASE_ARGS + ["--target", "vertex", "--output", package]) == 0
    job = aiplatform.PipelineJob(display_name="pets-unet", template_path=package,
                                 pipeline_root="gs://bucket/root", project="my-project",
                                 location="europe-west4", credentials=AnonymousCredentials())
    tasks = job.pipeline_spec["root"]["dag"]["tasks"]
    assert set(tasks) >= set(EXPECTED_DEPENDENCIES)


def test_kubeflow_package_loads_in_the_kfp_client_and_sdk(tmp_path, capsys):
    from kfp import components
    from kfp.client import client

    package = str(tmp_path / "pets_unet_pipeline.yaml")
    assert kubeflow_runner.main(BASE_ARGS + ["--output", package]) == 0  # target from extension
    assert "Compiled kubeflow package" in capsys.readouterr().out
    spec = client._extract_pipeline_yaml(package).pipeline_spec  # what upload_pipeline reads
    assert spec.pipeline_info.name == "pets-unet-segmentation"
    assert spec.default_pipeline_root == "gs://bucket/root"
    tasks = set(spec.root.dag.tasks)
    assert tasks == set(EXPECTED_DEPENDENCIES) - {"latest_blessed_model_resolver-model-resolver"}
    assert "baseline_model" not in spec.root.dag.tasks["Evaluator"].inputs.artifacts
    assert spec.root.dag.tasks["ImportExampleGen"].caching_options.enable_cache  # no spans
    assert components.load_component_from_file(package).name == "pets-unet-segmentation"


def test_the_json_package_is_not_one_kubeflow_takes(tmp_path):
    from kfp.client import client

    package = str(tmp_path / "pipeline.json")
    assert kubeflow_runner.main(BASE_ARGS + ["--output", package]) == 0
    with pytest.raises(ValueError, match="should end with one of"):
        client._extract_pipeline_yaml(package)


@pytest.mark.parametrize("extra, message", [
    (["--target", "kubeflow", "--output", "p.json"], "is a vertex package but --target is kubeflow"),
    (["--output", "p.txt"], "must end in .json"),
    (["--output", "p.yaml", "--submit", "--project", "p"], "--submit sends a Vertex AI"),
    (["--epochs", str(2 ** 63)], "--epochs must be from 1 to 100,000, got 9223372036854775808"),
    (["--tune", "--tune-trials", "0"], "--tune-trials must be from 1 to 100,000, got 0"),
    (["--beam-arg=--direct_num_workers=-3"], "--direct_num_workers must be 0 (one per CPU) or "
                                             "more, got -3"),
    (["--beam-arg=--runner=Nope"], "--beam-arg: --runner=Nope:"),
    (["--window-spans", "2"], "--window-spans, --warm-start and --on-drift need a --data-root "
                              "of span folders"),
    (["--span-layout", "tfds", "--window-spans", "0"], "--window-spans must be from 1"),
    (["--schedule", "0 3 * * 1"], "--schedule creates a Vertex AI schedule when submitting"),
    (["--submit", "--project", "p", "--schedule", "every monday"],
     "--schedule 'every monday': not a cron expression of 5 fields"),
])
def test_packages_that_would_not_load_are_refused(extra, message, capsys, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kubeflow_runner.main(BASE_ARGS + extra) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_dockerfile_builds_the_image_the_compiled_spec_expects():
    """What can be checked without a Docker engine."""
    import setuptools
    import tfx

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dockerfile = open(os.path.join(root, "Dockerfile")).read()
    base = re.search(r"^ARG TFX_IMAGE=gcr.io/tfx-oss-public/tfx:(\S+)$", dockerfile, re.M)
    assert base and base.group(1) == tfx.__version__
    packages = {p.split(".")[0] for p in setuptools.find_packages(
        root, include=["pipeline", "components", "model_code", "pets_unet"])}
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
    assert packages == copied == {"pipeline", "components", "model_code", "pets_unet"}
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    check = re.search(r'python -c "import ([^"]+)"', dockerfile).group(1)
    assert kubeflow_runner.ENTRYPOINT_MODULE in [m.strip() for m in check.split(",")]
    ignored = open(os.path.join(root, ".dockerignore")).read().split()
    assert not any(package in ignored for package in copied)


def test_vertex_replica_count_asks_for_a_chief_and_workers(tmp_path):
    spec = _compile(tmp_path, "--project", "my-project", "--vertex-training",
                    "--vertex-replica-count", "4")
    pools = json.loads(_parameter(spec, "Trainer", "custom_config"))[
        "ai_platform_training_args"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 3]
    assert pools[0]["machine_spec"] == pools[1]["machine_spec"]
    assert {pool["container_spec"]["image_uri"] for pool in pools} == {IMAGE}


def test_a_replica_count_below_one_is_refused(capsys):
    assert kubeflow_runner.main(BASE_ARGS + ["--vertex-training", "--project", "p",
                                             "--vertex-replica-count", "0"]) == 2
    assert "--vertex-replica-count must be at least 1" in capsys.readouterr().err


def test_span_folders_compile_to_a_span_pattern_a_window_and_a_warm_start(tmp_path):
    spec = _compile(tmp_path, "--span-layout", "tfds", "--window-spans", "2")
    config = json.loads(_parameter(spec, "ImportExampleGen", "input_config"))
    assert config["splits"][0]["pattern"] == "span-{SPAN}/oxford_iiit_pet/4.0.0/*.tfrecord*"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks["SpanWindow"]["dependentTasks"]) == {"ExampleQuarantine", "StatisticsGen",
                                                          "Transform"}
    assert _parameter(spec, "SpanWindow", "span_store") == "gs://bucket/root/span_store"
    assert _parameter(spec, "SpanWindow", "window_spans") == 2
    for task, producer in (("Transform", "ExampleQuarantine"), ("Trainer", "SpanWindow")):
        source = tasks[task]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]
        assert source["producerTask"] == producer, task
    resolver = "latest_blessed_model_resolver-model-resolver"
    for task in ("Trainer", "Evaluator"):  # one Resolver: warm start and baseline
        assert resolver in tasks[task]["dependentTasks"], task
    assert tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"][
        "producerTask"] == resolver


def test_a_local_span_folder_is_found_and_kubeflow_never_caches_the_ingest(tmp_path):
    import yaml

    from pipeline import dataset

    dataset.prepare_synthetic_span(str(tmp_path / "spans"), 1, 4, seed=3)
    package = str(tmp_path / "pipeline.yaml")
    argv = ["--pipeline-root", "gs://bucket/root", "--data-root", str(tmp_path / "spans"),
            "--image", IMAGE, "--output", package]
    assert kubeflow_runner.main(argv) == 0
    tasks = yaml.safe_load(open(package))["root"]["dag"]["tasks"]
    assert tasks["ImportExampleGen"]["cachingOptions"] == {"enableCache": False}
    assert tasks["SpanWindow"]["cachingOptions"] == {"enableCache": True}
    assert "base_model" not in tasks["Trainer"]["inputs"].get("artifacts", {})  # no Resolver


def test_a_schedule_without_credentials_fails_with_a_clear_message(tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    output = str(tmp_path / "pipeline.json")
    code = kubeflow_runner.main(BASE_ARGS + ["--output", output, "--project", "p", "--submit",
                                             "--schedule", "TZ=Europe/Berlin 0 3 * * 1"])
    assert code == 2
    assert "no Google Cloud credentials found" in capsys.readouterr().err
