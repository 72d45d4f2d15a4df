"""Runs the Trainer's run_fn in this process, as TFX's Trainer executor would, for the multi-worker
test: `python tests/run_fn_process.py TRANSFORM_DIR GRAPH_DIR SHARED_DIR OUT_DIR`. TF_CONFIG comes
from the environment. Every replica gets the same Trainer folders under SHARED_DIR, as on Vertex
AI; each writes its trained weights to OUT_DIR/weights.npz for comparison."""
import os
import sys

import numpy as np
from tfx.components.trainer.fn_args_utils import FnArgs

from model_code.config import SMOKE
from model_code.trainer import run_fn

transformed, graph, shared, out = sys.argv[1:5]
model = run_fn(FnArgs(
    train_files=[os.path.join(transformed, "Split-train", "*")],
    eval_files=[os.path.join(transformed, "Split-eval", "*")],
    transform_output=graph,
    serving_model_dir=os.path.join(shared, "model"),
    model_run_dir=os.path.join(shared, "model_run"),
    custom_config=SMOKE.as_custom_config()))
np.savez(os.path.join(out, "weights.npz"), *model.get_weights())
