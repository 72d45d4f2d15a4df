"""Container entrypoint of every pipeline step: TFX's, after repairing what Kubeflow's launcher drops.

    python -m pets_unet.entrypoint [--kubeflow] --executor_class_path ...
        --json_serialized_invocation_args '{ExecutorInput}'
        --json_serialized_inputs_spec_args '{ComponentInputsSpec}' [beam args]

The compiled spec runs this module instead of TFX's `kubeflow_v2_run_executor` (same arguments),
so one image runs on Vertex AI Pipelines and on Kubeflow Pipelines 2.x. Two things, then TFX's
own `main`, untouched, and with `--kubeflow` (only the Kubeflow package passes it) a third:

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

Hand-written because TFX has no hook for either; nothing in site-packages is changed.
"""
from __future__ import annotations

import json
import runpy
import sys
from typing import List, Optional

import yaml

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
    fixed = list(argv)
    i = _flag_value(argv, INVOCATION_FLAG)
    value = json.dumps(executor_input)
    fixed[i] = f"{INVOCATION_FLAG}={value}" if argv[i].startswith(INVOCATION_FLAG + "=") else value
    return fixed


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
    sys.argv = argv[:1] + args
    try:
        runpy.run_module(TFX_ENTRYPOINT, run_name="__main__", alter_sys=True)
    except SystemExit as done:  # absl's app.run always exits
        if kubeflow and done.code in (None, 0):
            removed = remove_folder_markers(output_uris(args))
            if removed:
                print(f"pets_unet.entrypoint: removed {len(removed)} zero-byte folder objects "
                      "under the outputs", file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
