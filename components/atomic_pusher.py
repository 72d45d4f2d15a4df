"""A Pusher executor that never leaves a half-written model version in the serving directory.

TFX's filesystem Pusher copies the model straight into `<base>/<version>/` (saved_model.pb last,
so TF Serving waits for it), but a run killed mid-copy leaves a partial version folder behind for
every other reader. This executor lets TFX's Pusher do all its work inside a hidden staging folder
(`<base>/.staging/<execution>/`) and then renames the finished version folder into place,
which is atomic on a local filesystem. Everything else (blessing check, versioning, the
PushedModel artifact) is TFX's own code.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

from tfx.components.pusher import component as tfx_pusher
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

STAGING = ".staging"


class AtomicPusherExecutor(pusher_executor.Executor):
    """Filesystem push through a staging folder and one rename."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        key = standard_component_specs.PUSH_DESTINATION_KEY
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[key], destination)
        if destination.WhichOneof("destination") != "filesystem":
            return super().Do(input_dict, output_dict, exec_properties)
        base = destination.filesystem.base_directory
        pushed = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        # The artifact's folder is named after this execution: unique, and the same on a retry.
        staging = os.path.join(base, STAGING, os.path.basename(pushed.uri.rstrip("/")))
        if fileio.exists(staging):  # left over by a killed attempt of this same execution
            fileio.rmtree(staging)
        destination.filesystem.base_directory = staging
        staged_properties = dict(exec_properties, **{key: proto_utils.proto_to_json(destination)})
        try:
            super().Do(input_dict, output_dict, staged_properties)
            if pushed.get_int_custom_property("pushed"):
                version = pushed.get_string_custom_property("pushed_version")
                final = os.path.join(base, version)
                fileio.rename(os.path.join(staging, version), final)
                pushed.set_string_custom_property("pushed_destination", final)
        finally:
            if fileio.exists(staging):
                fileio.rmtree(staging)
            parent = os.path.dirname(staging)
            if fileio.exists(parent) and not fileio.listdir(parent):
                fileio.rmtree(parent)


class AtomicPusher(tfx_pusher.Pusher):
    """TFX's Pusher with the staging executor above (same inputs, outputs and artifacts)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPusherExecutor)
