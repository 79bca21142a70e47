"""The label gate: one row per kept (or flagged) label, checked before any of it reaches training.

``label_table`` builds the table from the label stage's records; checks that compare with another
table (the target ID exists in that video's mask database; the span lies in the video) are
precomputed by the stage as boolean columns. The stage's ``target_in_db`` is computed from the same
database it voted on, so it cannot catch a label that disagrees with the prompt stage's output (a
hand-edited or stale label file, a re-prompted database): given ``instance_ids`` (video -> the IDs the
mask database holds), the gate recomputes it independently as ``target_in_prompt_db``. The drop
fraction of each split becomes a column so a table-level bound can be written as a column check. An
empty table fails outright: a suite over zero rows would pass vacuously, and "everything was dropped"
is exactly what this gate must stop.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite
from stvg.config import LabelParams

LABEL_COLUMNS = (
    "split",
    "sample_id",
    "video_id",
    "target_id",
    "status",
    "start_s",
    "end_s",
    "duration_s",
    "target_in_db",
    "end_within_video",
    "vote_share",
    "margin",
    "mean_iou",
    "min_iou",
    "presence",
    "ceiling_viou",
    "ceiling_tiou",
    "drop_fraction",
)
FRACTION_COLUMNS = ("vote_share", "margin", "mean_iou", "min_iou", "presence", "ceiling_viou", "ceiling_tiou")


def label_table(
    records: Sequence[Mapping[str, Any]],
    drop_fractions: Mapping[str, float],
    instance_ids: Mapping[str, Collection[int]] | None = None,
) -> pd.DataFrame:
    """One row per label record (kept or flagged), with its split's drop fraction as a column.

    With ``instance_ids`` the column ``target_in_prompt_db`` says whether the label's target is one of
    its video's instances there (a video absent from the mapping has none).
    """
    rows = [{c: r.get(c) for c in LABEL_COLUMNS if c != "drop_fraction"} for r in records]
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    df["drop_fraction"] = [float(drop_fractions.get(str(s), 1.0)) for s in df["split"]]
    if instance_ids is not None:
        known = {str(v): {int(i) for i in ids} for v, ids in instance_ids.items()}
        df["target_in_prompt_db"] = [
            _as_id(t) in known.get(str(v), set())
            for v, t in zip(df["video_id"], df["target_id"], strict=True)
        ]
    return df


def _as_id(value: Any) -> int | None:
    """An instance ID as int; None for a missing or non-integer value (it matches no instance)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    return int(as_float) if as_float.is_integer() else None


def label_expectations(max_drop_fraction: float, *, cross_check: bool = False) -> list[Expect]:
    """The label suite, one commented risk per expectation; ``cross_check`` adds the mask-DB recount."""
    cross = [
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "target_in_prompt_db", "value_set": [True]},
            "the target ID is an instance of its video in the prompt stage's mask database "
            "(recomputed by the gate, not taken from the label stage)",
        )
    ]
    return [
        # one label per sample and split: duplicates would double-weight a sample in GRPO
        Expect(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["split", "sample_id"]},
            "one label per sample",
        ),
        # only usable labels reach training
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "status", "value_set": ["kept", "flagged"]},
            "dropped samples stay out of the label files",
        ),
        # the answer the reward checks must be an instance the policy can see
        Expect("ExpectColumnValuesToNotBeNull", {"column": "target_id"}, "every label has a target ID"),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "target_id", "min_value": 1},
            "instance IDs start at 1 (the red numbers on the video)",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "target_in_db", "value_set": [True]},
            "the target ID exists in that video's mask database",
        ),
        *(cross if cross_check else []),
        # the temporal reward needs a valid span inside the video
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "start_s", "min_value": 0},
            "the GT span starts inside the video",
        ),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "end_s", "column_B": "start_s", "or_equal": False},
            "the GT span has positive length (start < end)",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "end_within_video", "value_set": [True]},
            "0 <= start < end <= duration",
        ),
        # confidence and ceiling are fractions; anything else means a broken computation upstream
        *[
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": c, "min_value": 0, "max_value": 1},
                f"`{c}` is a fraction in [0, 1]",
            )
            for c in FRACTION_COLUMNS
        ],
        # a corrupted prompt stage shows up as a burst of drops: stop before training on the rest
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "drop_fraction", "min_value": 0, "max_value": max_drop_fraction},
            f"at most {max_drop_fraction:g} of a split's samples are dropped (label.max_drop_fraction)",
        ),
    ]


LABEL_EXPECTATIONS: list[Expect] = label_expectations(LabelParams().max_drop_fraction)


def check_labels(
    records: Sequence[Mapping[str, Any]],
    drop_fractions: Mapping[str, float],
    max_drop_fraction: float,
    instance_ids: Mapping[str, Collection[int]] | None = None,
) -> CheckReport:
    """Run the label suite over the kept/flagged records; ``drop_fractions`` maps split -> share dropped.

    ``instance_ids`` (video -> its instance IDs in the prompt stage's mask database) turns on the
    independent target check. A split with no label row at all cannot show its drop fraction in the
    table; it is reported here.
    """
    present = {str(r.get("split")) for r in records}
    empty = {k: v for k, v in sorted(drop_fractions.items()) if k not in present}
    extra = [
        {
            "expectation": "ExpectTableRowCountToBeBetween",
            "column": "split",
            "why": f"split `{k}` has no label: every sample was dropped (see dropped.jsonl)",
            "unexpected_count": 0,
            "examples": [f"{k}: drop fraction {v:.2f}"],
        }
        for k, v in empty.items()
    ]
    if not records:
        return CheckReport("label", False, 0, {"evaluated_expectations": 0}, extra or _no_rows())
    report = run_suite(
        "label",
        label_table(records, drop_fractions, instance_ids),
        label_expectations(max_drop_fraction, cross_check=instance_ids is not None),
        "sample_id",
    )
    if not extra:
        return report
    return CheckReport(report.name, False, report.n_rows, report.statistics, [*report.failures, *extra])


def _no_rows() -> list[dict[str, Any]]:
    return [
        {
            "expectation": "ExpectTableRowCountToBeBetween",
            "column": None,
            "why": "no sample was labelled",
            "unexpected_count": 0,
            "examples": [],
        }
    ]
