"""pets_unet.entrypoint: what it repairs for Kubeflow's launcher, checked against TFX's own parser."""
import copy
import http.server
import json
import threading
import urllib.parse

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

from pets_unet import HtmlReport, Quarantine, entrypoint
from tfx.types import standard_artifacts

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
QUARANTINE_SCHEMA = "title: pets_unet.Quarantine\ntype: object\n"
INPUTS_SPEC = {"artifacts": {
    "examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}},
    "quarantine": {"artifactType": {"instanceSchema": QUARANTINE_SCHEMA}}},
    "parameters": {"split": {"parameterType": "STRING"}}}


def _executor_input(examples_type, quarantine_type):
    return {"inputs": {
        "artifacts": {
            "examples": {"artifacts": [{"name": "7", "uri": "/r/examples", "type": examples_type,
                                        "metadata": {"split_names": '["train"]'}}]},
            "quarantine": {"artifacts": [{"name": "8", "uri": "/r/q", "type": quarantine_type}]}},
        "parameterValues": {"split": "test"}},
        "outputs": {"outputFile": "/tmp/out.json"}}


def _parse_with_tfx(executor_input):
    entrypoint.register_artifact_types()
    message = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    return kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.inputs.artifacts)


@pytest.mark.parametrize("lost", [{"instanceSchema": ""}, {"schemaTitle": "system.Artifact"},
                                  {"schemaTitle": "system.Dataset"}])
def test_inputs_that_kubeflow_hands_over_parse_after_repair(lost):
    broken = _executor_input(lost, lost)
    with pytest.raises((AttributeError, ImportError, ValueError)):
        _parse_with_tfx(copy.deepcopy(broken))  # TFX alone cannot read them
    repairs = entrypoint.repair_executor_input(broken, INPUTS_SPEC)
    assert len(repairs) == 2
    parsed = _parse_with_tfx(broken)
    assert isinstance(parsed["examples"][0], standard_artifacts.Examples)
    assert parsed["examples"][0].split_names == '["train"]'
    assert isinstance(parsed["quarantine"][0], Quarantine)


def test_vertex_inputs_reach_tfx_unchanged():
    good = _executor_input({"instanceSchema": EXAMPLES_SCHEMA},
                           {"instanceSchema": QUARANTINE_SCHEMA})
    argv = ["--executor_class_path", "x.Y", "--json_serialized_invocation_args",
            json.dumps(good), "--json_serialized_inputs_spec_args", json.dumps(INPUTS_SPEC),
            "--runner=DirectRunner"]
    assert entrypoint.repaired_argv(argv) is argv


def test_repaired_argv_keeps_every_other_argument():
    broken = _executor_input({"instanceSchema": ""}, {"instanceSchema": ""})
    argv = ["--executor_class_path", "x.Y", f"--json_serialized_invocation_args={json.dumps(broken)}",
            "--json_serialized_inputs_spec_args", json.dumps(INPUTS_SPEC), "--runner=DirectRunner"]
    fixed = entrypoint.repaired_argv(argv)
    assert [fixed[0], fixed[1], fixed[3], fixed[4], fixed[5]] == [
        argv[0], argv[1], argv[3], argv[4], argv[5]]
    repaired = json.loads(fixed[2].split("=", 1)[1])
    assert repaired["inputs"]["artifacts"]["examples"]["artifacts"][0]["type"] == {
        "instanceSchema": EXAMPLES_SCHEMA}


def test_every_custom_type_is_a_valid_kfp_name_that_the_container_resolves():
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    entrypoint.register_artifact_types()
    for artifact_class in (Quarantine, HtmlReport):
        title = artifact_class.TYPE_NAME
        assert f"title: {title}" in compiler_utils.get_artifact_schema(artifact_class)
        path = kubeflow_v2_entrypoint_utils._retrieve_class_path(  # noqa: SLF001
            pipeline_spec_pb2.ArtifactTypeSchema(instance_schema=f"title: {title}\n"))
        assert import_utils.import_class_by_path(path) is artifact_class


class _FlatBucketStore(http.server.BaseHTTPRequestHandler):
    """The two calls of GCS's JSON API that the cleanup makes (list by prefix, delete), over a
    flat name -> bytes map, as GCS stores objects. Emulated because no GCS is reachable here and
    the pip-installable emulators keep objects in a file tree, where "a/" cannot be an object."""

    objects = {}

    def log_message(self, *args):
        pass

    def _reply(self, code, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        bucket = url.path.split("/")[4]
        prefix = urllib.parse.parse_qs(url.query).get("prefix", [""])[0]
        items = [{"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data))}
                 for name, data in sorted(self.objects.items()) if name.startswith(prefix)]
        self._reply(200, {"kind": "storage#objects", "items": items})

    def do_DELETE(self):  # noqa: N802
        name = urllib.parse.unquote(self.path.split("/o/", 1)[1].split("?")[0])
        self._reply(204 if self.objects.pop(name, None) is not None else 404)


@pytest.fixture
def gcs(monkeypatch):
    """Objects in an emulated bucket, reached through Google's own storage client."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlatBucketStore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    _FlatBucketStore.objects = {}
    yield _FlatBucketStore.objects
    server.shutdown()


def test_folder_markers_under_outputs_are_removed_and_files_kept(gcs):
    gcs.update({"root/Trainer/model/": b"", "root/Trainer/model/Format-Serving/": b"",
                "root/Trainer/model/Format-Serving/saved_model.pb": b"pb",
                "root/Trainer/model/Format-Serving/variables/": b"",
                "root/Trainer/model/empty.txt": b"", "root/Other/x/": b""})
    removed = entrypoint.remove_folder_markers(["gs://bucket/root/Trainer/model", "/local/path"])
    assert sorted(removed) == ["gs://bucket/root/Trainer/model/",
                               "gs://bucket/root/Trainer/model/Format-Serving/",
                               "gs://bucket/root/Trainer/model/Format-Serving/variables/"]
    assert sorted(gcs) == ["root/Other/x/", "root/Trainer/model/Format-Serving/saved_model.pb",
                           "root/Trainer/model/empty.txt"]


# ------------------------------------------------------------------ ImportExampleGen over spans

SPAN_PATTERN = "span-{SPAN}/oxford_iiit_pet/4.0.0/*.tfrecord*"
IMPORT_EXECUTOR = "tfx.components.example_gen.import_example_gen.executor.Executor"


def _write_span(root, span):
    """`root/span-N/oxford_iiit_pet/4.0.0/*.tfrecord*`, 8 synthetic pets (seed N)."""
    import os
    import shutil

    from pipeline import dataset

    folder = os.path.join(root, f"span-{span}")
    dataset.prepare_synthetic(folder, num_examples=8, seed=span)
    shutil.rmtree(os.path.join(folder, "archives"))


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    """A data folder with span-1/ and span-2/, as new data arrives in it."""
    root = tmp_path_factory.mktemp("spans")
    _write_span(str(root), 1)
    _write_span(str(root), 2)
    return root


def _records(pattern, compression=None):
    import glob

    import tensorflow as tf

    return sorted(bytes(r.numpy()) for path in sorted(glob.glob(pattern))
                  for r in tf.data.TFRecordDataset(path, compression_type=compression))


def _span_records(root, span):
    return _records(str(root / f"span-{span}" / "oxford_iiit_pet" / "4.0.0" / "*.tfrecord*"))


def _example_gen_launcher(tmp_path, input_base, mode):
    """A one-step package (ImportExampleGen over `{SPAN}`), compiled as kubeflow_runner compiles
    the pipeline's, run by the launcher emulator."""
    from tfx import v1 as tfx
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    import kubeflow_runner
    from launcher_emulator import Launcher, python_env

    example_gen = tfx.components.ImportExampleGen(
        input_base=str(input_base),
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all",
                                                                   pattern=SPAN_PATTERN)]))
    root = str(tmp_path / "root")
    package = tmp_path / f"spans{kubeflow_runner.TARGETS[mode]}"
    kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image="pets-unet:test", default_commands=kubeflow_runner.ENTRYPOINTS[mode],
            use_pipeline_spec_2_1=True),
        output_dir=str(tmp_path), output_filename=package.name,
    ).run(tfx.dsl.Pipeline(pipeline_name="spans", pipeline_root=root,
                           components=[example_gen], enable_cache=True))
    return Launcher(str(package), root, mode, python_env(), str(tmp_path / "work"))


def _examples(step):
    import os

    examples = step.outputs["examples"][0]
    written = _records(os.path.join(examples.uri, "Split-*", "*.gz"), "GZIP")
    return examples.metadata, written


def test_kubeflow_import_example_gen_reads_the_newest_span_without_lifecycle_hooks(
        tmp_path, spans):
    launcher = _example_gen_launcher(tmp_path, spans, "kubeflow")
    container = launcher.spec_dict["deploymentSpec"]["executors"]["ImportExampleGen_executor"][
        "container"]
    assert "preCacheCheck" in container["lifecycle"]  # compiled, and never run by Kubeflow
    step = launcher.run()["ImportExampleGen"]  # the container's exact command + args, a process
    assert step.command[:7] == ["python", "-m", "pets_unet.entrypoint", "--kubeflow",
                                "--executor_class_path", IMPORT_EXECUTOR,
                                "--json_serialized_invocation_args"]
    invocation = json.loads(step.command[7])
    assert "{SPAN}" in invocation["inputs"]["parameterValues"]["input_config"]
    assert "span" not in invocation["inputs"]["parameterValues"]
    log = open(step.log_path).read()
    assert "$ ImportExampleGen driver" not in log  # no hook ran; the entrypoint ran the driver
    assert "input pattern resolved by TFX's ExampleGen driver, run here" in log
    with open(invocation["outputs"]["outputFile"]) as f:  # what the launcher uploads
        written = json.load(f)["artifacts"]["examples"]["artifacts"][0]["metadata"]
    assert written["span"] == 2.0
    assert written["input_fingerprint"].startswith("split:all,num_files:2,")
    assert "version" not in written  # the pattern has no {VERSION}
    metadata, records = _examples(step)
    assert metadata == written
    assert records == _span_records(spans, 2)  # span 2's records, all of them, and only them


def test_steps_without_span_tokens_pass_unchanged():
    invocation = {"inputs": {"parameterValues": {
        "input_config": json.dumps({"splits": [{"name": "all", "pattern": "*.tfrecord*"}]})}},
        "outputs": {"outputFile": "/nonexistent/executor_output.json"}}
    for executor in (IMPORT_EXECUTOR, "tfx.components.trainer.executor.GenericExecutor"):
        argv = ["--executor_class_path", executor, "--json_serialized_invocation_args",
                json.dumps(invocation), "--runner=DirectRunner"]
        assert entrypoint.resolve_spans(argv) == (argv, {})
        assert entrypoint.resolve_spans(argv)[0] is argv
