"""Quality gate on the prompted data (mask database), run by the pipeline flow after the prompt stage.

``prompt_table`` reduces each video entry to one row of facts (files present, id numbering, boxes
inside the frame, empty masks, render and sample counts, churn, repairs); the suite asserts them.
Per-row facts are computed here, with pandas/numpy, so the GX suite stays a readable checklist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite
from stvg.config import PromptParams


def _mp4_frames(path: Any) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def prompt_table(db: Any, video_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per video: the facts the prompt suite checks (``db`` is a ``maskdb.MaskDB``)."""
    from stvg.prompting.maskdb import SAMPLED, TABLE

    rows = []
    for vid in video_ids if video_ids is not None else db.video_ids():
        row: dict[str, Any] = {"video_id": vid}
        if not db.has(vid):
            rows.append({**row, "has_table": False, "has_render": False})
            continue
        folder = db.entry_dir(vid)
        row["has_table"] = (folder / TABLE).is_file()
        row["has_render"] = db.prompted_video_path(vid).is_file() and (folder / SAMPLED).is_file()
        if not (row["has_table"] and row["has_render"]):
            rows.append(row)
            continue
        t = db.table(vid)
        s = db.summary(vid)
        sampling = db.sampling(vid)
        ids = sorted(int(i) for i in t.instance_id.unique())
        w, h = int(s["width"]), int(s["height"])
        outside = (t.x1 < 0) | (t.y1 < 0) | (t.x2 > w) | (t.y2 > h) | (t.x2 <= t.x1) | (t.y2 <= t.y1)
        row.update(
            n_instances=len(ids),
            ids_consecutive=ids == list(range(1, len(ids) + 1)),
            boxes_outside=int(outside.sum()),
            empty_masks=int((t.area <= 0).sum()),
            duplicate_rows=int(t.duplicated(["frame", "instance_id"]).sum()),
            render_frames=_mp4_frames(db.prompted_video_path(vid)),
            tracked_frames=int(s["tracked_frames"]),
            sampled_frames=len(db.sampled_frames(vid)),
            sampled_planned=len(sampling["frame_indices"]),
            render_matches=False,
            churn=float(s["churn"]),
            n_repairs=int(s["n_repairs"]),
        )
        row["render_matches"] = row["render_frames"] == row["tracked_frames"] and (
            row["sampled_frames"] == row["sampled_planned"]
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    for col, default in (
        ("has_table", False),
        ("has_render", False),
        ("ids_consecutive", False),
        ("render_matches", False),
    ):
        df[col] = df[col].fillna(default).astype(bool) if col in df else default
    for col in ("boxes_outside", "empty_masks", "duplicate_rows", "n_repairs", "n_instances"):
        df[col] = df[col].fillna(-1).astype(np.int64) if col in df else -1
    df["churn"] = df["churn"].fillna(np.inf).astype(float) if "churn" in df else np.inf
    return df


def prompt_expectations(p: PromptParams) -> list[Expect]:
    """The prompt suite, with the churn / repair bounds of ``p``."""
    true = {"value_set": [True]}
    return [
        Expect("ExpectColumnValuesToBeUnique", {"column": "video_id"}, "one entry per video"),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "has_table", **true},
            "every processed video has its table",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "has_render", **true},
            "every processed video has its renders",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "n_instances", "min_value": 1},
            "at least one instance",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "ids_consecutive", **true},
            "instance ids are 1..K: the policy is told numbers, gaps would be unanswerable",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "boxes_outside", "min_value": 0, "max_value": 0},
            "boxes inside frames",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "empty_masks", "min_value": 0, "max_value": 0},
            "masks non-empty",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "duplicate_rows", "min_value": 0, "max_value": 0},
            "one row per (frame, instance)",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "render_matches", **true},
            "render frame count equals tracked frames and sampled frames equal the sampling plan",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "churn", "min_value": 0, "max_value": p.max_churn},
            "new IDs per tracked second within prompt.max_churn (ID churn corrupts labels)",
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "n_repairs", "min_value": 0, "max_value": p.max_repairs_per_video},
            "repairs per video within prompt.max_repairs_per_video (many repairs = a failing tracker)",
        ),
    ]


PROMPT_EXPECTATIONS = prompt_expectations(PromptParams())


def check_prompt_failures(summary: Mapping[str, Any], max_fraction: float) -> CheckReport:
    """Fail when more than ``max_fraction`` of the videos failed to prompt, naming them and the cause.

    The prompt stage isolates a failing video (and exits 0 while any video succeeded), so without this
    bound a mostly failed run reaches the label gate, which can only blame samples whose video is gone.
    Reads the stage's ``summary.json`` (``videos``: how many were asked for; ``failures``: one
    ``{video_id, error}`` per failed video).
    """
    failures = [f for f in summary.get("failures") or [] if f.get("video_id")]
    n_videos = max(int(summary.get("videos") or 0), len(failures))
    rows = [
        {"video": f"{f['video_id']} ({f.get('error', 'no reason given')})", "ok": False} for f in failures
    ]
    rows += [{"video": f"ok-{i}", "ok": True} for i in range(n_videos - len(failures))]
    table = pd.DataFrame(rows, columns=["video", "ok"]).astype({"ok": "bool"})
    bound = Expect(
        "ExpectColumnValuesToBeInSet",
        {"column": "ok", "value_set": [True], "mostly": 1.0 - max_fraction},
        f"at most {max_fraction:g} of the videos fail to prompt (prompt.max_failed_fraction; "
        f"{len(failures)} of {n_videos} failed)",
    )
    return run_suite("prompt_failures", table, [bound], id_column="video")


def check_prompt(
    db: Any, p: PromptParams | None = None, video_ids: Sequence[str] | None = None
) -> CheckReport:
    """Run the prompt suite over the database (all its videos, or ``video_ids``)."""
    expectations = PROMPT_EXPECTATIONS if p is None else prompt_expectations(p)
    return run_suite("prompt", prompt_table(db, video_ids), expectations, id_column="video_id")
