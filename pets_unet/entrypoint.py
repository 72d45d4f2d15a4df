"""Container entrypoint of every pipeline step: TFX's, after repairing what Kubeflow's launcher drops.

    python -m pets_unet.entrypoint [--kubeflow] --executor_class_path ...
        --json_serialized_invocation_args '{ExecutorInput}'
        --json_serialized_inputs_spec_args '{ComponentInputsSpec}' [beam args]

The compiled spec runs this module instead of TFX's `kubeflow_v2_run_executor` (same arguments),
so one image runs on Vertex AI Pipelines and on Kubeflow Pipelines 2.x. Two things, then TFX's
own `main`, untouched; with `--kubeflow` (only the Kubeflow package passes it) a third, and
around ImportExampleGen steps a fourth:

1. Tells TFX where this project's artifact classes are (pets_unet.TYPE_CLASSES): TFX imports an
   unknown type by its name, and `system.HTML` is no Python path.
2. Repairs input artifacts whose type cannot name a TFX class. Kubeflow Pipelines' open-source
   driver rebuilds input artifacts from its metadata store with an empty `instanceSchema` and a
   `system.*` title (TFX then fails with "'NoneType' object has no attribute 'get'" or an
   ImportError). Each step's arguments carry its declared input types
   (`--json_serialized_inputs_spec_args`, compiled with pipeline spec 2.1); an input whose type
   title differs from the declared one gets the declared type. Vertex AI passes the declared
   types already, so there the ExecutorInput reaches TFX byte for byte as Vertex wrote it.
3. `--kubeflow`: after a successful step, deletes the zero-byte "folder/" objects that
   TensorFlow's GCS filesystem leaves under the step's gs:// outputs; Kubeflow's launcher
   downloads a consumer's inputs object by object and fails on them ("not a directory",
   kubeflow/pipelines#13476). TensorFlow reads GCS folders without them.
4. ImportExampleGen with `{SPAN}`/`{VERSION}` in its input pattern: TFX's executor does not
   resolve them, TFX's file-based ExampleGen driver (the step's `lifecycle.preCacheCheck`) does.
   Vertex AI runs that hook; Kubeflow Pipelines runs no lifecycle hooks (its driver/launcher,
   kubeflow/pipelines backend/src/v2, never reads `lifecycle`), and the raw pattern matches no
   file. So while `input_config` holds a token, the hook's output at `outputs.outputFile` is used
   or, without one, TFX's driver runs here; its span, input_fingerprint, version and resolved
   input_config become the step's parameters. TFX's executor overwrites that file with Examples
   metadata that has no span; span, input_fingerprint (and version) are added afterwards, so
   downstream steps and the metadata store see which span they got.

Hand-written because TFX has no hook for any of these; nothing in site-packages is changed.
"""
from __future__ import annotations

import json
import re
import runpy
import sys
from typing import Dict, List, Optional, Tuple

import yaml

EXECUTOR_FLAG = "--executor_class_path"
INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"


def _flag_value(argv: List[str], flag: str) -> Optional[int]:
    """Index of `flag`'s value in argv (`--flag value` or `--flag=value`), else None."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return i + 1
        if arg.startswith(flag + "="):
            return i
    return None


def _get(argv: List[str], flag: str) -> Optional[str]:
    i = _flag_value(argv, flag)
    if i is None:
        return None
    return argv[i].split("=", 1)[1] if argv[i].startswith(flag + "=") else argv[i]


def _title(artifact_type: dict) -> str:
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    try:
        schema = yaml.safe_load(artifact_type.get("instanceSchema") or "")
    except yaml.YAMLError:
        return ""
    return schema.get("title", "") if isinstance(schema, dict) else ""


def repair_executor_input(executor_input: dict, inputs_spec: dict) -> List[str]:
    """Gives input artifacts their declared types where the launcher lost them.

    Changes `executor_input` in place and returns "key: old title -> new title" for each repair.
    """
    declared = inputs_spec.get("artifacts", {})
    repairs = []
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        want = declared.get(key, {}).get("artifactType")
        if not want:
            continue
        for artifact in artifact_list.get("artifacts", []):
            have = artifact.get("type", {})
            if _title(have) != _title(want):
                repairs.append(f"{key}: {_title(have) or '(no type)'} -> {_title(want)}")
                artifact["type"] = dict(want)
    return repairs


def repaired_argv(argv: List[str]) -> List[str]:
    """argv with the ExecutorInput repaired; the very same list when nothing needed repair."""
    invocation, spec = _get(argv, INVOCATION_FLAG), _get(argv, INPUTS_SPEC_FLAG)
    if invocation is None or spec is None:
        return argv
    executor_input = json.loads(invocation)
    repairs = repair_executor_input(executor_input, json.loads(spec))
    if not repairs:
        return argv
    print("pets_unet.entrypoint: input types restored from the step's declared inputs: "
          + "; ".join(repairs), file=sys.stderr)
    return _with_invocation(argv, executor_input)


def _with_invocation(argv: List[str], executor_input: dict) -> List[str]:
    """A copy of argv whose ExecutorInput is `executor_input`, in the form argv had it."""
    fixed = list(argv)
    i = _flag_value(argv, INVOCATION_FLAG)
    value = json.dumps(executor_input)
    fixed[i] = f"{INVOCATION_FLAG}={value}" if argv[i].startswith(INVOCATION_FLAG + "=") else value
    return fixed


# ------------------------------------------------------------------ 4. spans of ImportExampleGen

# Executors whose inputs TFX's file-based ExampleGen driver resolves (compiled with it as their
# `lifecycle.preCacheCheck`); the class path as the compiled `--executor_class_path` names it.
SPAN_EXECUTORS = ("tfx.components.example_gen.import_example_gen.executor.Executor",)
# What only the driver resolves in a split pattern (tfx.components.example_gen.utils: SPAN,
# VERSION, with or without a width, and the date specs).
UNRESOLVED = re.compile(r"\{(SPAN|VERSION)(:[^}]*)?\}|\{(YYYY|MM|DD)\}")
SPAN_KEYS = ("span", "input_fingerprint", "version")  # tfx.components.example_gen.utils
INPUT_CONFIG_KEY = "input_config"
EXAMPLES_KEY = "examples"


def _read_json(path: Optional[str]) -> Optional[dict]:
    from tfx.dsl.io import fileio  # outputFile is a gs:// path on Vertex AI

    if not path or not fileio.exists(path):
        return None
    with fileio.open(path, "r") as f:
        return json.loads(f.read())


def _driver_parameters(output_file: Optional[str]) -> Dict[str, object]:
    """The parameterValues a file-based ExampleGen driver left at `output_file`, else {}."""
    written = (_read_json(output_file) or {}).get("parameterValues", {})
    config = written.get(INPUT_CONFIG_KEY)
    if "span" in written and isinstance(config, str) and not UNRESOLVED.search(config):
        return written
    return {}


def run_example_gen_driver(executor_input: dict, inputs_spec: Optional[dict]) -> Dict[str, object]:
    """Runs TFX's file-based ExampleGen driver here, as Vertex AI runs it in the step's
    `lifecycle.preCacheCheck`; returns the parameterValues it writes to `outputs.outputFile`."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver

    message = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput(),
                                    ignore_unknown_fields=True)
    spec = None
    if inputs_spec is not None:
        spec = json_format.ParseDict(inputs_spec, pipeline_spec_pb2.ComponentInputsSpec(),
                                     ignore_unknown_fields=True)
    driver._run_driver(message, spec)  # noqa: SLF001 -- its `main` only parses these two flags
    written = _driver_parameters(executor_input["outputs"]["outputFile"])
    if not written:
        raise RuntimeError("TFX's ExampleGen driver wrote no resolved input_config to "
                           + executor_input["outputs"]["outputFile"])
    return written


def resolve_spans(argv: List[str]) -> Tuple[List[str], Dict[str, object]]:
    """For a file-based ExampleGen step: argv with `{SPAN}`/`{VERSION}` resolved, and the span,
    input_fingerprint and version (when set) that its Examples metadata must carry.

    Resolved only while the step's `input_config` still holds such a token: from the driver's
    output at `outputs.outputFile` when the platform ran the hook, else by running the driver.
    Without a token, argv is returned as it came (the very same list), with the span values a
    platform already gave the step (in its parameters, or in the hook's output file), if any.
    Other steps: (argv, {}).
    """
    if _get(argv, EXECUTOR_FLAG) not in SPAN_EXECUTORS:
        return argv, {}
    invocation = _get(argv, INVOCATION_FLAG)
    if invocation is None:
        return argv, {}
    executor_input = json.loads(invocation)
    parameters = executor_input.setdefault("inputs", {}).setdefault("parameterValues", {})
    output_file = executor_input.get("outputs", {}).get("outputFile")
    config = parameters.get(INPUT_CONFIG_KEY)
    if not (isinstance(config, str) and UNRESOLVED.search(config)):
        known = parameters if "span" in parameters else _driver_parameters(output_file)
        return argv, {key: known[key] for key in SPAN_KEYS if key in known}
    written = _driver_parameters(output_file)
    source = "the lifecycle hook's output"
    if not written:
        spec = _get(argv, INPUTS_SPEC_FLAG)
        written = run_example_gen_driver(executor_input, json.loads(spec) if spec else None)
        source = "TFX's ExampleGen driver, run here (the platform ran no lifecycle hook)"
    for key in SPAN_KEYS + (INPUT_CONFIG_KEY,):
        if key in written:
            parameters[key] = written[key]
    print(f"pets_unet.entrypoint: input pattern resolved by {source}: span "
          f"{int(written['span'])}"
          + (f", version {int(written['version'])}" if "version" in written else ""),
          file=sys.stderr)
    return (_with_invocation(argv, executor_input),
            {key: written[key] for key in SPAN_KEYS if key in written})


def record_spans(output_file: Optional[str], values: Dict[str, object]) -> List[str]:
    """Adds `values` missing from the Examples metadata in the executor's output file (TFX's
    executor writes split_names, file_format, payload_format, tfx_version, no span); returns the
    keys added. Numbers as TFX writes integer properties there: JSON floats."""
    from tfx.dsl.io import fileio

    written = _read_json(output_file) if values else None
    if not written:
        return []
    added = []
    for artifact in written.get("artifacts", {}).get(EXAMPLES_KEY, {}).get("artifacts", []):
        metadata = artifact.setdefault("metadata", {})
        for key, value in values.items():
            if key not in metadata:
                metadata[key] = float(value) if isinstance(value, (int, float)) else value
                added.append(key)
    if added:
        with fileio.open(output_file, "w") as f:
            f.write(json.dumps(written, indent=2))
    return added


def register_artifact_types() -> None:
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    import pets_unet

    for title, class_path in pets_unet.TYPE_CLASSES.items():
        compiler_utils.TITLE_TO_CLASS_PATH.setdefault(title, class_path)


def output_uris(argv: List[str]) -> List[str]:
    invocation = _get(argv, INVOCATION_FLAG)
    outputs = json.loads(invocation or "{}").get("outputs", {}).get("artifacts", {})
    return [artifact["uri"] for artifact_list in outputs.values()
            for artifact in artifact_list.get("artifacts", []) if artifact.get("uri")]


def remove_folder_markers(uris: List[str]) -> List[str]:
    """Deletes zero-byte objects named like folders ("a/b/") under gs:// URIs; returns them."""
    gcs = [uri for uri in uris if uri.startswith("gs://")]
    if not gcs:
        return []
    from google.cloud import storage

    client = storage.Client()
    removed = []
    for uri in gcs:
        bucket, _, path = uri[len("gs://"):].partition("/")
        for blob in client.list_blobs(bucket, prefix=path.rstrip("/") + "/"):
            if blob.name.endswith("/") and blob.size == 0:
                blob.delete()
                removed.append(f"gs://{bucket}/{blob.name}")
    return removed


TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
KUBEFLOW_FLAG = "--kubeflow"


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    kubeflow = KUBEFLOW_FLAG in argv[1:]
    args = repaired_argv([arg for arg in argv[1:] if arg != KUBEFLOW_FLAG])
    register_artifact_types()
    args, spans = resolve_spans(args)
    sys.argv = argv[:1] + args
    try:
        runpy.run_module(TFX_ENTRYPOINT, run_name="__main__", alter_sys=True)
    except SystemExit as done:  # absl's app.run always exits
        if spans and done.code in (None, 0):
            output_file = json.loads(_get(args, INVOCATION_FLAG))["outputs"]["outputFile"]
            added = record_spans(output_file, spans)
            if added:
                print(f"pets_unet.entrypoint: Examples metadata now carries {', '.join(added)}",
                      file=sys.stderr)
        if kubeflow and done.code in (None, 0):
            removed = remove_folder_markers(output_uris(args))
            if removed:
                print(f"pets_unet.entrypoint: removed {len(removed)} zero-byte folder objects "
                      "under the outputs", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
