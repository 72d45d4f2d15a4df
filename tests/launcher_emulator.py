"""Runs a compiled pipeline package on this machine the way a cluster's launcher runs it.

Every step runs as its own process with the exact `command` + `args` of its executor in the
compiled spec, `{{$}}` replaced by an ExecutorInput JSON built the way the platform builds it, in a
fresh working directory, with a temporary directory of its own (a container's /tmp), removed
after. What the platform does around the container is emulated, from public sources:

* Vertex AI Pipelines (mode "vertex"): the ExecutorInput carries parameters from the task's
  constant inputs; input artifacts with the producer's `executor_output.json` metadata, their
  resource name and the producer's declared type (`instanceSchema`); output artifacts with a
  resource name, the declared type and a URI under the task's folder; `outputFile` in the task
  folder. Form as in TFX's own entrypoint tests (tensorflow/tfx,
  tfx/orchestration/kubeflow/v2/container/testdata/executor_invocation.json). The ImportExampleGen
  driver (`lifecycle.preCacheCheck`) runs first with the same input, and the `parameterValues` it
  writes to `outputFile` (span, input_fingerprint, version, input_config with `{SPAN}` resolved)
  replace the executor's parameters: "The CAIP pipelines system reads this file and updates MLMD
  with the new execution properties" (TFX, tfx/orchestration/kubeflow/v2/
  file_based_example_gen/driver.py, `_run_driver`). Resolver tasks run their
  `outputArtifactQueries` (the filters TFX compiles) over the artifacts of earlier runs, newest
  first, as Vertex ML Metadata would. Caching as Vertex documents it: a step whose task spec,
  parameters (after the driver) and input artifacts match an earlier execution reuses its outputs.
* Kubeflow Pipelines 2.x, open source (mode "kubeflow"): what its Go driver/launcher does
  differently (kubeflow/pipelines backend/src/v2; reports in sky-uk/kfp-operator's TFX patch notes
  and kubeflow/pipelines#13476): input artifacts arrive with an empty `instanceSchema` and a
  `system.*` schema title; `outputFile` is a local path in the container; lifecycle hooks are not
  run (so the executor gets ImportExampleGen's pattern with `{SPAN}` unresolved, as on a cluster;
  pets_unet.entrypoint resolves it); resolver executors are rejected by its compiler
  (backend/src/v2/compiler/argocompiler), so the kubeflow package must not contain any. Its cache
  key (task spec, parameters, input artifacts) has no driver output, so it cannot see new files
  in a data folder; a task is reused only where its `cachingOptions.enableCache` is true.

Not emulated, only a real cluster shows them: IAM and service accounts, GCS and its zero-byte
"directory" objects, quotas and machine types, image pulls, retries, the UIs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional

import yaml
from google.protobuf import json_format
from kfp.local import placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

VERTEX, KUBEFLOW = "vertex", "kubeflow"
RESOURCE_PREFIX = "projects/123/locations/us-central1/metadataStores/default/artifacts/"


def load_pipeline_spec(path: str) -> pipeline_spec_pb2.PipelineSpec:
    """The PipelineSpec inside a Vertex PipelineJob (.json) or a KFP package (.yaml)."""
    if path.endswith(".json"):
        with open(path) as f:
            job = json.load(f)
        return json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    from kfp.client.client import _extract_pipeline_yaml  # what kfp.Client uploads with

    return _extract_pipeline_yaml(path).pipeline_spec


def schema_title(artifact_type: dict) -> str:
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    return (yaml.safe_load(artifact_type.get("instanceSchema") or "") or {}).get("title", "")


@dataclasses.dataclass
class Recorded:
    """One artifact as the platform's metadata store keeps it."""

    name: str
    uri: str
    metadata: dict
    type: dict  # the producer's declared ArtifactTypeSchema, as JSON
    order: int

    def as_input(self, mode: str) -> dict:
        if mode == VERTEX:
            return {"name": self.name, "uri": self.uri, "metadata": self.metadata,
                    "type": self.type}
        # KFP's driver rebuilds inputs from MLMD: the numeric id as name, no type schema
        # (metadata.Client.GetOutputArtifactsByExecutionId: `Schema: ""`).
        return {"name": self.name.rsplit("/", 1)[-1], "uri": self.uri,
                "metadata": self.metadata, "type": {"instanceSchema": ""}}


@dataclasses.dataclass
class StepResult:
    task: str
    command: List[str]
    outputs: Dict[str, List[Recorded]]
    log_path: Optional[str] = None
    seconds: float = 0.0
    cached: bool = False


class StepFailed(RuntimeError):
    pass


class Launcher:
    """Executes one package run after run; artifacts of earlier runs stay queryable."""

    def __init__(self, package: str, pipeline_root: str, mode: str, env: Dict[str, str],
                 workdir: str):
        self.spec = load_pipeline_spec(package)
        self.spec_dict = json_format.MessageToDict(self.spec)
        self.pipeline_root = pipeline_root
        self.mode = mode
        self.env = env
        self.workdir = workdir
        self.store: List[Recorded] = []
        self.next_id = 0  # artifact ids, as the metadata store hands them out
        self.cache: Dict[str, StepResult] = {}

    # ------------------------------------------------------------------ the DAG

    def task_order(self) -> List[str]:
        tasks = self.spec_dict["root"]["dag"]["tasks"]
        done: List[str] = []
        while len(done) < len(tasks):
            ready = sorted(name for name, task in tasks.items() if name not in done
                           and all(dep in done for dep in task.get("dependentTasks", [])))
            if not ready:
                raise ValueError("the DAG has a cycle")
            done.extend(ready)
        return done

    def run(self) -> Dict[str, StepResult]:
        job_id = f"job-{uuid.uuid4().hex[:8]}"
        results: Dict[str, StepResult] = {}
        for name in self.task_order():
            results[name] = self._run_task(job_id, name, results)
        return results

    def _run_task(self, job_id: str, name: str, results: Dict[str, StepResult]) -> StepResult:
        task = self.spec_dict["root"]["dag"]["tasks"][name]
        component = self.spec_dict["components"][task["componentRef"]["name"]]
        executor = self.spec_dict["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = self._input_artifacts(task, results)
        if "resolver" in executor:
            if self.mode != VERTEX:
                raise StepFailed(f"{name}: Kubeflow Pipelines cannot run resolver executors")
            return self._resolve(name, executor["resolver"], inputs)
        if "container" not in executor:
            raise StepFailed(f"{name}: unsupported executor {sorted(executor)}")
        return self._run_container(job_id, name, task, component, executor["container"], inputs)

    def _input_artifacts(self, task: dict, results: Dict[str, StepResult]
                         ) -> Dict[str, List[Recorded]]:
        inputs = {}
        for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
            source = spec["taskOutputArtifact"]
            inputs[key] = results[source["producerTask"]].outputs.get(
                source["outputArtifactKey"], [])
        return inputs

    # ------------------------------------------------------------------ resolvers (Vertex)

    def _resolve(self, name: str, resolver: dict, inputs: Dict[str, List[Recorded]]
                 ) -> StepResult:
        outputs = {}
        for key, query in resolver["outputArtifactQueries"].items():
            matches = [artifact for artifact in self.store
                       if self._matches(artifact, query["filter"], inputs)]
            outputs[key] = sorted(matches, key=lambda a: -a.order)[:1]
        return StepResult(task=name, command=[], outputs=outputs)

    @staticmethod
    def _matches(artifact: Recorded, query: str, inputs: Dict[str, List[Recorded]]) -> bool:
        """The filters TFX compiles for LatestBlessedModelStrategy (and nothing else)."""
        def input_metadata(match):
            found = inputs.get(match.group(1), [])
            return str(found[0].metadata.get(match.group(2), "")) if found else "\0"

        query = re.sub(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}",
                       input_metadata, query)
        for clause in query.split(" AND "):
            field, value = clause.split("=", 1)
            value = value.strip('"')
            if field == "schema_title":
                ok = schema_title(artifact.type) == value
            elif field == "state":
                ok = value == "LIVE"
            elif field == "name":
                ok = artifact.name == value
            elif field.startswith("metadata.") and field.endswith(".number_value"):
                ok = artifact.metadata.get(field.split(".")[1]) == float(value)
            else:
                raise ValueError(f"filter clause not emulated: {clause}")
            if not ok:
                return False
        return True

    # ------------------------------------------------------------------ containers

    def _run_container(self, job_id, name, task, component, container, inputs) -> StepResult:
        task_root = os.path.join(self.pipeline_root, job_id, f"{name}_{uuid.uuid4().hex[:6]}")
        os.makedirs(task_root)
        if self.mode == VERTEX:
            output_file = os.path.join(task_root, "executor_output.json")
        else:  # a path in the container, uploaded by the launcher (driver.go, provisionOutputs)
            output_file = os.path.join(self.workdir, name, "kfp_outputs", "output_metadata.json")
            if os.path.exists(output_file):  # each pod starts without one
                os.remove(output_file)
        declared = component.get("outputDefinitions", {}).get("artifacts", {})
        outputs, ids = {}, {}
        for key, spec in declared.items():
            self.next_id += 1
            ids[key] = self.next_id
            # Vertex names outputs by their metadata resource; KFP's driver by the output key.
            outputs[key] = [{"name": RESOURCE_PREFIX + str(ids[key]) if self.mode == VERTEX
                             else key, "type": spec["artifactType"],
                             "uri": os.path.join(task_root, key), "metadata": {}}]
        parameters = {key: spec["runtimeValue"]["constant"]
                      for key, spec in task.get("inputs", {}).get("parameters", {}).items()}
        executor_input = {
            "inputs": {
                "parameterValues": dict(parameters),
                "artifacts": {key: {"artifacts": [a.as_input(self.mode) for a in found]}
                              for key, found in inputs.items()},
            },
            "outputs": {"artifacts": {key: {"artifacts": found} for key, found in outputs.items()},
                        "outputFile": output_file},
        }
        json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())  # well-formed
        cwd = os.path.join(self.workdir, name)
        os.makedirs(cwd, exist_ok=True)
        log_path = os.path.join(task_root, "log.txt")
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        driver_output = {}
        if hook and self.mode == VERTEX:
            self._exec(name + " driver", hook["command"] + hook.get("args", []), executor_input,
                       cwd, log_path)
            with open(output_file) as f:
                driver_output = json.load(f).get("parameterValues", {})
            # Vertex updates the execution's properties from the hook's output before the executor.
            executor_input["inputs"]["parameterValues"].update(driver_output)
        cache_key = json.dumps([component, container, parameters, driver_output,
                                {key: [a.name for a in found] for key, found in inputs.items()}],
                               sort_keys=True)
        if task.get("cachingOptions", {}).get("enableCache") and cache_key in self.cache:
            return dataclasses.replace(self.cache[cache_key], cached=True)
        started = time.monotonic()
        command = container["command"] + container.get("args", [])
        resolved = self._exec(name, command, executor_input, cwd, log_path)
        produced = {}
        if os.path.exists(output_file):
            with open(output_file) as f:
                produced = json.load(f).get("artifacts", {})
        recorded = {}
        for key, found in outputs.items():
            written = produced.get(key, {}).get("artifacts", [{}])
            artifact = Recorded(name=RESOURCE_PREFIX + str(ids[key]), uri=found[0]["uri"],
                                metadata=written[0].get("metadata", {}),
                                type=found[0]["type"], order=len(self.store))
            self.store.append(artifact)
            recorded[key] = [artifact]
        result = StepResult(task=name, command=resolved, outputs=recorded, log_path=log_path,
                            seconds=time.monotonic() - started)
        self.cache[cache_key] = result
        return result

    def _exec(self, name, command, executor_input, cwd, log_path) -> List[str]:
        resolved = placeholder_utils.replace_placeholders(
            full_command=command, executor_input_dict=executor_input,
            pipeline_resource_name="pets-unet", task_resource_name=name,
            pipeline_root=self.pipeline_root)
        # A container's /tmp lives and dies with it: TFX's Beam executors leave a 49 MB package
        # of TFX there on every step run with the DirectRunner (pipeline/beam_options.py).
        tmp = tempfile.mkdtemp(prefix=f"{name}-tmp-", dir=cwd)
        try:
            with open(log_path, "a") as log:
                log.write(f"$ {name}\n")
                log.flush()
                code = subprocess.call(resolved, cwd=cwd, env=dict(self.env, TMPDIR=tmp),
                                       stdout=log, stderr=subprocess.STDOUT)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if code != 0:
            with open(log_path) as log:
                tail = log.read()[-6000:]
            raise StepFailed(f"{name} exited with {code}; end of its log:\n{tail}")
        return resolved


def python_env() -> Dict[str, str]:
    """The environment of a container whose `python` is this interpreter."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
