"""The detector gate: the weights the prompt stage loads exist, and a trained detector detects.

A YOLO run that learned nothing (wrong labels, a broken dataset yaml) still writes ``weights.pt`` and
exits 0; its mAP50 is 0 or NaN, and every later stage would then track empty detections without
failing. So after training the gate asks for a finite mAP50 above a bound (``min_map50``; above 0
when no bound is configured). A given weights file (``detector.weights``) has no mAP: the stage only
loads and copies it, so only the file and the metrics record are checked.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite
from stvg.checks.files import file_bytes, number, read_json

WEIGHTS = "weights.pt"
METRICS = "metrics.json"
SOURCES = ("trained", "given")  # metrics.json "source": trained here, or a weights file adopted


def detector_table(out_dir: Path) -> pd.DataFrame:
    """One row for the detector stage's folder: weights size, metrics record, mAP50."""
    metrics = read_json(out_dir / METRICS)
    row = {
        "item": str(out_dir),
        "weights_bytes": file_bytes(out_dir / WEIGHTS),
        "source": str(metrics.get("source", "")),
        "mAP50": number(metrics.get("mAP50")),
    }
    return pd.DataFrame([row])


def detector_expectations(min_map50: float | None = None, *, trained: bool = True) -> list[Expect]:
    """The detector suite; the mAP checks apply to a trained detector only."""
    suite = [
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "weights_bytes", "min_value": 1},
            f"{WEIGHTS} exists and is non-empty (the prompt stage loads it)",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "source", "value_set": list(SOURCES)},
            f"{METRICS} records where the weights came from (trained or given)",
        ),
    ]
    if not trained:
        return suite
    bound = (
        {"min_value": 0, "strict_min": True, "max_value": 1}
        if min_map50 is None
        else {"min_value": min_map50, "max_value": 1}
    )
    what = "> 0" if min_map50 is None else f">= {min_map50:g}"
    return [
        *suite,
        # NaN reads as null, which Between would skip: the null check is what catches a NaN mAP
        Expect(
            "ExpectColumnValuesToNotBeNull",
            {"column": "mAP50"},
            "the trained detector reports a finite mAP50",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "mAP50", **bound},
            f"mAP50 {what} on the held-out frames (a detector that finds nothing empties every prompt)",
        ),
    ]


def check_detector(out_dir: Path, min_map50: float | None = None) -> CheckReport:
    """Run the detector suite on the stage's folder (``artifacts/detector``)."""
    table = detector_table(Path(out_dir))
    trained = table.at[0, "source"] != "given"
    return run_suite("detector", table, detector_expectations(min_map50, trained=trained), id_column="item")
