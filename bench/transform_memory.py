"""Peak memory of the data steps at the `seed` preset: ImportExampleGen -> ... -> Transform.

    .venv/bin/python bench/transform_memory.py [--examples-dir data/synthetic_1000/...]

Runs the pipeline's own components up to and including Transform (no Trainer) in this process
on the 1,000 synthetic pets, then prints one JSON line with the process's peak resident memory
and the Transform component's wall time. Called by run_all.py in a fresh process so that the
number is not inflated by other work.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def main() -> int:
    from tfx import v1 as tfx

    from model_code.config import get_preset
    from pipeline.dataset import ensure_synthetic
    from pipeline.pipeline import data_components

    data_root = ensure_synthetic(os.path.join(ROOT, "data", "synthetic_1000"), 1000)
    with tempfile.TemporaryDirectory() as out:
        components = data_components(data_root, get_preset("seed"))
        start = time.perf_counter()
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="transform-memory", pipeline_root=os.path.join(out, "root"),
            components=list(components),
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(os.path.join(out, "metadata.sqlite")),
            beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"]))
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"steps": [c.id for c in components], "examples": 1000, "seconds": seconds,
                      "peak_rss_mb": peak_mb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
