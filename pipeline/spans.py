"""A data folder that grows one `span-N/` folder per batch of new pets, and how to read it.

    DATA/span-1/oxford_iiit_pet/4.0.0/*.tfrecord*    (TFDS's layout below each span), or
    DATA/span-1/*.tfrecord*                            (the files themselves)

One layout per data folder. N is an integer without leading zeros (TFX's `{SPAN}` would read
`span-03` as 3 beside `span-3`); gaps are fine; the newest span is the one a run ingests. This
module only looks at names (no TensorFlow), so the runners can check a folder in a blink.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Optional, Tuple

from pipeline.dataset import SPAN_PREFIX, TFDS_NAME, TFDS_VERSION, TFRECORD_PATTERN, DataDirError

SPAN_FOLDER = re.compile(r"^span-(0|[1-9][0-9]*)$")
LOOKS_LIKE_A_SPAN = re.compile(r"^span[-_ ]?[0-9]", re.IGNORECASE)  # span-3, span_4, span-04
# Below the pipeline root: SpanWindow's record of the spans ingested (components.span_window).
STORE_FOLDER = "span_store"
SPAN_FLAGS = ("window_spans", "warm_start", "on_drift")  # argparse names, on both runners
# Below each span folder, relative paths to its TFRecords, by layout.
LAYOUTS = {"tfds": f"{TFDS_NAME}/{TFDS_VERSION}/{TFRECORD_PATTERN}", "files": TFRECORD_PATTERN}


@dataclasses.dataclass(frozen=True)
class SpanLayout:
    """The spans of a data folder: their numbers and where their TFRecords are."""

    root: str
    spans: Tuple[int, ...]  # ascending
    layout: str  # a key of LAYOUTS

    @property
    def newest(self) -> int:
        return self.spans[-1]

    @property
    def pattern(self) -> str:
        """ImportExampleGen's input pattern, relative to `root`, with TFX's `{SPAN}` token."""
        return input_pattern(self.layout)

    def folder(self, span: int) -> str:
        """The folder holding span `span`'s TFRecords."""
        return os.path.dirname(os.path.join(self.root, f"{SPAN_PREFIX}{span}",
                                            LAYOUTS[self.layout]))

    def describe(self) -> str:
        shown = ", ".join(str(s) for s in self.spans)
        return f"spans {shown} in {self.root}; this run ingests span {self.newest}"


def store_path(pipeline_root: str) -> str:
    """The span store of a pipeline root (a local path or a gs:// URI)."""
    return f"{pipeline_root.rstrip('/')}/{STORE_FOLDER}"


def check_span_flags(args, has_spans: bool, data_flag: str, how: str) -> None:
    """ValueError when a continuous-training flag is set for data without span folders."""
    if not has_spans and any(getattr(args, name) for name in SPAN_FLAGS):
        raise ValueError(f"--window-spans, --warm-start and --on-drift need a {data_flag} of "
                         f"span folders ({how}; README, \"Continuous training\")")


def input_pattern(layout: str) -> str:
    return f"{SPAN_PREFIX}{{SPAN}}/{LAYOUTS[layout]}"


def _layout_of(folder: str) -> Optional[str]:
    for name, pattern in LAYOUTS.items():
        if glob.glob(os.path.join(folder, pattern)):
            return name
    return None


def find_spans(data_dir: str) -> Optional[SpanLayout]:
    """The span layout of `data_dir`, or None when no folder in it looks like a span.

    Raises DataDirError, in one line saying what to do, for a misnamed span folder, another folder
    beside the spans, spans in different layouts, or a newest span without TFRecords (TFX would
    silently take the span before it).
    """
    if not os.path.isdir(data_dir):
        return None
    folders = sorted(name for name in os.listdir(data_dir)
                     if os.path.isdir(os.path.join(data_dir, name)) and not name.startswith("."))
    if not any(LOOKS_LIKE_A_SPAN.match(name) for name in folders):
        return None
    root = os.path.abspath(data_dir)
    spans, layouts = [], {}
    for name in folders:
        match = SPAN_FOLDER.match(name)
        if not match:
            raise DataDirError(
                f"{os.path.join(root, name)}: not a span folder beside the spans; name spans "
                f"span-<N> (N a whole number without leading zeros, e.g. span-3) and move "
                "anything else out of the data folder")
        span = int(match.group(1))
        spans.append(span)
        layout = _layout_of(os.path.join(root, name))
        if layout:
            layouts.setdefault(layout, []).append(name)
    spans.sort()
    newest = f"{SPAN_PREFIX}{spans[-1]}"
    if len(layouts) > 1:
        detail = "; ".join(f"{', '.join(names)} with {LAYOUTS[layout]}"
                           for layout, names in sorted(layouts.items()))
        raise DataDirError(f"--data-dir {root}: spans in two layouts ({detail}); keep one "
                           "layout for every span")
    if not layouts or newest not in next(iter(layouts.values())):
        raise DataDirError(
            f"{os.path.join(root, newest)}: the newest span holds no TFRecord files "
            f"({' or '.join(LAYOUTS.values())}); copy its files in, or remove the empty folder")
    return SpanLayout(root=root, spans=tuple(spans), layout=next(iter(layouts)))
