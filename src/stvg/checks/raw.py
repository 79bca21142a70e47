"""The raw-annotation gate: one row per loaded sample, checked before anything is computed from it.

``annotation_table`` flattens ``Sample`` records into a table whose per-sample box checks are
precomputed booleans (a sample has many boxes; a table row has one value per column), and
``RAW_EXPECTATIONS`` is the suite, one commented risk per expectation. Boxes may overhang the frame by
``BOX_TOLERANCE_PX`` (rounding in xywh -> xyxy conversions); more than that is an annotation error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite
from stvg.data.errors import InvalidSample
from stvg.records import DATASETS, SENTENCE_TYPES, Sample

BOX_TOLERANCE_PX = 1.0

_INT = ["int", "int64", "int32", "Int64"]
_NUMBER = [*_INT, "float", "float64", "float32", "Float64"]

RAW_COLUMNS = (
    "sample_id",
    "dataset",
    "video_id",
    "video",
    "query",
    "sentence_type",
    "split",
    "fps",
    "n_frames",
    "width",
    "height",
    "start_s",
    "end_s",
    "duration_s",
    "first_frame",
    "last_frame",
    "n_boxes",
    "boxes_inside",
    "boxes_valid",
    "boxes_in_time",
)

RAW_EXPECTATIONS: list[Expect] = [
    # something was loaded at all (an empty split silently trains on nothing)
    Expect("ExpectTableRowCountToBeBetween", {"min_value": 1}, "the annotation file yielded samples"),
    # identity: labels, predictions and metrics join on sample_id
    Expect("ExpectColumnValuesToBeUnique", {"column": "sample_id"}, "sample ids are unique"),
    # required fields
    *[
        Expect("ExpectColumnValuesToNotBeNull", {"column": c}, f"`{c}` is required")
        for c in ("sample_id", "dataset", "video", "query", "fps", "n_frames", "width", "height")
    ],
    *[
        Expect("ExpectColumnValuesToNotBeNull", {"column": c}, "a grounding sample has a GT time span")
        for c in ("start_s", "end_s")
    ],
    # types: a string where a number belongs breaks every later comparison
    *[
        Expect("ExpectColumnValuesToBeOfType", {"column": c, "type_": "str"}, f"`{c}` is text")
        for c in ("sample_id", "dataset", "video", "query")
    ],
    *[
        Expect("ExpectColumnValuesToBeInTypeList", {"column": c, "type_list": _INT}, f"`{c}` is an integer")
        for c in ("n_frames", "width", "height", "n_boxes")
    ],
    *[
        Expect("ExpectColumnValuesToBeInTypeList", {"column": c, "type_list": _NUMBER}, f"`{c}` is a number")
        for c in ("fps", "start_s", "end_s", "duration_s")
    ],
    Expect(
        "ExpectColumnValuesToBeInSet", {"column": "dataset", "value_set": list(DATASETS)}, "a known data set"
    ),
    Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "sentence_type", "value_set": list(SENTENCE_TYPES)},
        "declarative or interrogative (VidSTG reports them separately)",
    ),
    # the query is what the policy reads: an empty one is an unanswerable sample
    Expect("ExpectColumnValuesToMatchRegex", {"column": "query", "regex": r"\S"}, "queries are non-empty"),
    # video geometry: fps and frame count define every time <-> frame conversion
    Expect("ExpectColumnValuesToBeBetween", {"column": "fps", "min_value": 0, "strict_min": True}, "fps > 0"),
    Expect("ExpectColumnValuesToBeBetween", {"column": "n_frames", "min_value": 1}, "videos have frames"),
    Expect("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 0}, "width >= 0 (0 = unknown)"),
    Expect(
        "ExpectColumnValuesToBeBetween", {"column": "height", "min_value": 0}, "height >= 0 (0 = unknown)"
    ),
    # the GT time span: 0 <= start < end <= duration
    Expect("ExpectColumnValuesToBeBetween", {"column": "start_s", "min_value": 0}, "GT start >= 0 s"),
    Expect(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "end_s", "column_B": "start_s", "ignore_row_if": "either_value_is_missing"},
        "GT end after GT start",
    ),
    Expect(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {
            "column_A": "duration_s",
            "column_B": "end_s",
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        "GT end within the video (end <= duration)",
    ),
    # GT boxes: inside the frame, well-formed, on existing frames
    Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "boxes_inside", "value_set": [True]},
        "boxes inside the frame",
    ),
    Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "boxes_valid", "value_set": [True]},
        "boxes have x1 < x2, y1 < y2",
    ),
    Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "boxes_in_time", "value_set": [True]},
        "box frames lie within the video's frames",
    ),
]

_GT_SPAN_REQUIRED = {"start_s", "end_s"}
T = TypeVar("T")


def annotation_table(samples: Sequence[Sample]) -> pd.DataFrame:
    """One row per sample with the fields the raw suite checks (box checks precomputed per sample)."""
    table = pd.DataFrame([_row(s) for s in samples], columns=list(RAW_COLUMNS))
    # Column types are inferred, not cast: a mistyped value must reach the type expectations.
    for c in ("first_frame", "last_frame"):
        if table[c].map(lambda v: v is None or isinstance(v, int)).all():
            table[c] = table[c].astype("Int64")
    for c in ("boxes_inside", "boxes_valid", "boxes_in_time"):
        table[c] = table[c].astype("bool")
    return table


def raw_expectations(*, require_gt: bool = True) -> list[Expect]:
    """The raw suite; ``require_gt=False`` drops the GT-span presence checks (query-only test sets)."""
    if require_gt:
        return list(RAW_EXPECTATIONS)
    return [
        e
        for e in RAW_EXPECTATIONS
        if not (e.kind == "ExpectColumnValuesToNotBeNull" and e.kwargs["column"] in _GT_SPAN_REQUIRED)
    ]


def check_raw(samples: Sequence[Sample], *, name: str = "raw", require_gt: bool = True) -> CheckReport:
    """Run the raw-annotation suite on loaded samples."""
    return run_suite(name, annotation_table(samples), raw_expectations(require_gt=require_gt), "sample_id")


def check_invalid_share(
    n_valid: int, invalid: Sequence[InvalidSample], max_fraction: float, *, name: str = "raw_invalid"
) -> CheckReport:
    """Fail when more than ``max_fraction`` of a file's samples were skipped as invalid, naming them.

    ``data.skip_invalid`` drops a malformed sample instead of stopping; without this cap a release
    that is mostly broken (a wrong format option, a truncated file) would pass with a handful of
    survivors. Samples the data set's own protocol drops are not defects and are not counted.
    """
    defects = [bad for bad in invalid if not bad.protocol]
    rows = [{"sample": f"{bad.sample_id} ({bad.reason})", "valid": False} for bad in defects]
    rows += [{"sample": f"valid-{i}", "valid": True} for i in range(n_valid)]
    table = pd.DataFrame(rows, columns=["sample", "valid"]).astype({"valid": "bool"})
    share = Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "valid", "value_set": [True], "mostly": 1.0 - max_fraction},
        f"at most {max_fraction:g} of the samples invalid (data.max_invalid_fraction; "
        f"{len(defects)} of {len(rows)} are)",
    )
    return run_suite(name, table, [share], id_column="sample")


def _row(s: Sample) -> dict[str, object]:
    span = s.gt_span_s
    frames = s.gt_span_frames
    return {
        "sample_id": s.sample_id,
        "dataset": s.dataset,
        "video_id": s.video_id,
        "video": s.video,
        "query": s.query,
        "sentence_type": s.sentence_type,
        "split": s.split,
        "fps": s.fps,
        "n_frames": s.n_frames,
        "width": s.width,
        "height": s.height,
        "start_s": span[0] if span else math.nan,
        "end_s": span[1] if span else math.nan,
        "duration_s": _safe(lambda: float(s.duration_s), math.nan),
        "first_frame": frames[0] if frames else None,
        "last_frame": frames[1] if frames else None,
        "n_boxes": len(s.gt_boxes),
        "boxes_inside": _safe(lambda: _boxes_inside(s), False),
        "boxes_valid": _safe(lambda: _boxes_valid(s), False),
        "boxes_in_time": _safe(lambda: all(0 <= f < s.n_frames for f in s.gt_boxes), False),
    }


def _boxes_inside(s: Sample) -> bool:
    tol = BOX_TOLERANCE_PX
    size_known = s.width > 0 and s.height > 0  # a data set with boxes must state the frame size
    return all(
        size_known and x1 >= -tol and y1 >= -tol and x2 <= s.width + tol and y2 <= s.height + tol
        for x1, y1, x2, y2 in s.gt_boxes.values()
    )


def _boxes_valid(s: Sample) -> bool:
    return all(
        all(math.isfinite(v) for v in (x1, y1, x2, y2)) and x1 < x2 and y1 < y2
        for x1, y1, x2, y2 in s.gt_boxes.values()
    )


def _safe(compute: Callable[[], T], fallback: T) -> T:
    """A mistyped field must fail its expectation, not crash the table build."""
    try:
        return compute()
    except (TypeError, ValueError):
        return fallback
