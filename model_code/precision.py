"""Which numeric precision training uses on this machine (`Config.precision`, default "auto").

"auto" picks Keras' mixed precision where the hardware computes it natively, as TensorFlow's
mixed-precision guide recommends: `mixed_bfloat16` on CPUs with native bfloat16 instructions
(AVX512_BF16 or AMX) and on GPUs of compute capability 8.0 or later, `mixed_float16` on GPUs of
compute capability 7.x, float32 everywhere else (on CPUs without those instructions bfloat16 is
emulated and slower). Variables, logits, loss and metrics stay float32 either way. The GPU rules
follow the guide; no machine of this project has run them.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Optional, Sequence, Set, Tuple

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# Where the Trainer records the precision it used: a file in the exported SavedModel's folder
# for extra files (ignored by TensorFlow Serving).
RECORD = os.path.join("assets.extra", "training.json")
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Set[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is missing)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities() -> Tuple[Tuple[int, int], ...]:
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability:
            capabilities.append(tuple(capability))
    return tuple(capabilities)


def choose(requested: str, flags: Optional[Iterable[str]] = None,
           gpus: Optional[Sequence[Tuple[int, int]]] = None) -> Tuple[str, str]:
    """(Keras policy name, why) for a requested precision; "auto" looks at the hardware."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested, "as configured"
    gpus = gpu_compute_capabilities() if gpus is None else tuple(gpus)
    if gpus:
        slowest = min(gpus)
        name = f"GPU compute capability {slowest[0]}.{slowest[1]}"
        if slowest >= (8, 0):
            return "mixed_bfloat16", f"auto: {name}"
        if slowest >= (7, 0):
            return "mixed_float16", f"auto: {name}"
        return "float32", f"auto: {name} has no fast mixed precision"
    native = sorted(set(NATIVE_BF16_CPU_FLAGS) & set(cpu_flags() if flags is None else flags))
    if native:
        return "mixed_bfloat16", f"auto: CPU has native bfloat16 ({', '.join(native)})"
    return "float32", "auto: no GPU, CPU without native bfloat16"


def write_record(model_dir: str, policy: str, reason: str, **more) -> None:
    """Writes the training record: the precision, why, and `more` (JSON-able) beside them."""
    import tensorflow as tf

    path = os.path.join(model_dir, RECORD)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"precision": policy, "precision_reason": reason, **more}, f)


def read_record(model_dir: str) -> Optional[dict]:
    """What write_record wrote, or None for a model trained before it existed."""
    import tensorflow as tf

    path = os.path.join(model_dir, RECORD)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
