"""Wall time and peak memory of the data steps: ImportExampleGen -> ... -> Transform.

    .venv/bin/python bench/transform_memory.py [--data-dir DIR] [--beam-mode in_memory]

Runs the pipeline's own components up to and including Transform (no Trainer) in this process,
at the `seed` preset, on the 1,000 synthetic pets unless --data-dir names other TFRecords, then
prints one JSON line: wall time, each component's seconds, and the peak resident memory of this
process (Beam's multi-processing workers, when used, are other processes and not included). Called by run_all.py and
beam_modes.py in a fresh process so that the numbers are not inflated by other work.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", help="TFRecords folder; default: 1,000 synthetic pets")
    parser.add_argument("--beam-mode", default="in_memory",
                        choices=("in_memory", "multi_processing"))
    args = parser.parse_args(argv)

    from tfx import v1 as tfx

    from model_code.config import get_preset
    from pipeline import beam_options
    from pipeline.dataset import ensure_synthetic, find_tfrecord_dir
    from pipeline.pipeline import data_components
    from pipeline.run_summary import summarize_latest_run

    data_root = (find_tfrecord_dir(args.data_dir) if args.data_dir else
                 ensure_synthetic(os.path.join(ROOT, "data", "synthetic_1000"), 1000))
    with tempfile.TemporaryDirectory() as out:
        components = data_components(data_root, get_preset("seed"))
        metadata = os.path.join(out, "metadata.sqlite")
        start = time.perf_counter()
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="transform-memory", pipeline_root=os.path.join(out, "root"),
            components=components.components(),
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(metadata),
            beam_pipeline_args=beam_options.direct_runner_args(args.beam_mode)))
        seconds = time.perf_counter() - start
        components_seconds = summarize_latest_run(metadata).seconds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"steps": [c.id for c in components.components()], "data_root": data_root,
                      "beam_mode": args.beam_mode, "cpus": beam_options.cores(),
                      "seconds": seconds, "components": components_seconds,
                      "peak_rss_mb": peak_mb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
