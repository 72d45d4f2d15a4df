"""Writes a benchmark's results as JSON under outputs/bench/ and says where."""
from __future__ import annotations

import json
import os


def save(out_dir: str, name: str, results: dict) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"written: {path}")
    return path
