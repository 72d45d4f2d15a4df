"""Which tf.distribute strategy the Trainer uses, chosen from the environment, and who writes.

* `TF_CONFIG` naming more than one task (chief + workers; Vertex AI sets it for multi-replica
  jobs) -> MultiWorkerMirroredStrategy: synchronous data-parallel training over all of them.
* several GPUs on this machine -> MirroredStrategy (untested here: no machine of this project
  runs TensorFlow on a GPU).
* otherwise TensorFlow's default strategy (one device), i.e. exactly the single-machine code.

The global batch stays `Config.batch_size`: Keras splits each batch across the replicas, so the
steps per epoch and the learning-rate boundaries are the same as on one device. Only the chief
writes into the Trainer's folders (TensorFlow's multi-worker Keras guide): other workers log to
a temporary folder, removed afterwards, and export nothing; they wait until the chief's export
is complete, because TFX's Trainer executor, which runs on every replica, fails a replica that
finds no model at the Trainer's output.

A worker waits for all its peers at the first collective operation, without a time limit by
default: a chief whose workers never start waits until the job is cancelled (Vertex AI starts
all replicas together and fails the job if one fails).
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional, Tuple

import tensorflow as tf


def cluster_tasks(tf_config: Optional[str] = None) -> Tuple[int, Optional[str], int]:
    """(number of chief + worker tasks, this task's type, its index) from TF_CONFIG."""
    config = json.loads(tf_config if tf_config is not None else os.environ.get("TF_CONFIG")
                        or "{}")
    cluster = config.get("cluster", {})
    task = config.get("task", {})
    count = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return count, task.get("type"), int(task.get("index", 0))


def choose_strategy() -> tf.distribute.Strategy:
    tasks, _, _ = cluster_tasks()
    if tasks > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def describe(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    where = (f", this task {resolver.task_type} {resolver.task_id}"
             if resolver is not None and resolver.task_type else "")
    # Public names: the multi-worker class is CollectiveAllReduceStrategy inside TensorFlow.
    names = ((tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
             (tf.distribute.MirroredStrategy, "MirroredStrategy"))
    name = next((label for cls, label in names if isinstance(strategy, cls)), None)
    if name is None:
        return "training on one device"
    return f"{name} with {strategy.num_replicas_in_sync} replica(s){where}"


def shard_policy(num_files: int) -> tf.data.experimental.AutoShardPolicy:
    """By file when every worker gets at least one, by example otherwise (TensorFlow's advice)."""
    tasks, _, _ = cluster_tasks()
    if tasks > 1 and num_files >= tasks:
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA


def wait_for_file(path: str, timeout_s: float = 900.0, poll_s: float = 2.0) -> None:
    """Returns once `path` exists (the chief's last written file); TimeoutError after timeout."""
    deadline = time.monotonic() + timeout_s
    while not tf.io.gfile.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chief did not finish exporting {path} within "
                               f"{timeout_s:.0f} s")
        time.sleep(poll_s)
