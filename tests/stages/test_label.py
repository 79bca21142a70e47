"""The label stage on a tiny hand-built mask database, and the label gate on good and bad tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from stvg.io import read_jsonl
from stvg.prompting.maskdb import MaskDB, write_entry
from stvg.stages.label import main

GT_XYWH = [10, 10, 20, 20]
GT_BOX = (10.0, 10.0, 30.0, 30.0)
OTHER = (60.0, 60.0, 80.0, 80.0)


def hcstvg_entry(st_frame: int, n: int) -> dict:
    """A 20-frame, 1-fps HC-STVG v2 entry whose GT tube covers 1-based frames st_frame..st_frame+n-1."""
    return {
        "bbox": [GT_XYWH] * n,
        "st_time": float(st_frame - 1),
        "ed_time": float(st_frame - 1 + n),
        "img_num": 20,
        "st_frame": st_frame,
        "English": "the square moves",
        "img_size": [100, 100],
    }


def add_video(db: MaskDB, video_id: str, boxes: dict[int, dict[int, tuple]], track_every: int = 1) -> None:
    """Write one mask-database entry with the real writer: frame -> {instance: xyxy}."""
    rows = [
        {"frame": f, "time_s": float(f), "instance_id": i, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3],
         "area": (b[2] - b[0]) * (b[3] - b[1]), "score": 0.9, "rle": "{}"}
        for f, inst in boxes.items() if f % track_every == 0 for i, b in inst.items()
    ]  # fmt: skip
    sampling = {
        "native_fps": 1.0, "n_frames": 20, "frame_indices": list(range(0, 20, 2)),
        "times_s": [float(t) for t in range(0, 20, 2)], "width": 100, "height": 100, "fps": 0.5,
    }  # fmt: skip
    with db.entry(video_id, key=f"k-{video_id}") as folder:
        write_entry(folder, pd.DataFrame(rows), {"n_frames": 20}, sampling, [[[[0, 0, 0]]]])


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    (data / "anno").mkdir(parents=True)
    (data / "videos").mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4"):
        (data / "videos" / name).write_bytes(b"")
    (data / "anno" / "train_v2.json").write_text(
        json.dumps({"a.mp4": hcstvg_entry(5, 5), "d.mp4": hcstvg_entry(1, 10)}), encoding="utf-8"
    )
    (data / "anno" / "val_v2.json").write_text(
        json.dumps({"b.mp4": hcstvg_entry(3, 8), "c.mp4": hcstvg_entry(1, 4)}), encoding="utf-8"
    )
    params = tmp_path / "params.yaml"
    params.write_text(
        "data:\n  dataset: hcstvg-v2\n  train_annotation: anno/train_v2.json\n"
        "  test_annotation: anno/val_v2.json\n  video_root: videos\n"
        "label:\n  max_drop_fraction: 0.5\n",
        encoding="utf-8",
    )
    db = MaskDB(tmp_path / "prompt")
    add_video(db, "a.mp4", {f: {1: GT_BOX, 2: OTHER} for f in range(20)})
    # d.mp4: the target is tracked only on the first 3 of its 10 GT frames -> dropped for presence
    add_video(db, "d.mp4", {f: ({2: GT_BOX} if f < 3 else {1: OTHER}) for f in range(20)})
    # b.mp4 tracked every 2nd frame only: untracked GT frames read the nearest tracked frame
    add_video(db, "b.mp4", {f: {3: OTHER, 4: GT_BOX} for f in range(20)}, track_every=2)
    # c.mp4 is not in the database at all
    return {"params": params, "data": data, "prompt": tmp_path / "prompt", "out": tmp_path / "label"}


def run_stage(layout: dict[str, Path]) -> int:
    return main(
        ["--params", str(layout["params"]), "--data-dir", str(layout["data"]),
         "--prompt-dir", str(layout["prompt"]), "--out", str(layout["out"])]
    )  # fmt: skip


def test_label_stage_writes_labels_drops_and_ceiling(layout: dict[str, Path]) -> None:
    assert run_stage(layout) == 0
    out = layout["out"]
    train = read_jsonl(out / "train.jsonl")
    test = read_jsonl(out / "test.jsonl")
    dropped = {r["video_id"]: r for r in read_jsonl(out / "dropped.jsonl")}
    assert [(r["video_id"], r["target_id"], r["status"]) for r in train] == [("a.mp4", 1, "kept")]
    a = train[0]
    assert a["start_s"] == 4.0 and a["end_s"] == 9.0 and a["vote_share"] == 1.0 and a["margin"] == 1.0
    assert (a["sampled_start"], a["sampled_end"]) == (2, 4)  # sampled times 4, 6, 8 s
    assert a["ceiling_viou"] == pytest.approx(1.0) and a["target_in_db"] and a["end_within_video"]
    assert [(r["video_id"], r["target_id"]) for r in test] == [("b.mp4", 4)]
    assert test[0]["n_untracked"] == 4 and test[0]["ceiling_viou"] == pytest.approx(1.0)
    assert dropped["c.mp4"]["reason"] == "video_not_in_mask_db" and dropped["c.mp4"]["split"] == "test"
    assert dropped["d.mp4"]["target_id"] == 2 and "presence<0.5" in dropped["d.mp4"]["reason"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ceiling_m_vIoU"] == pytest.approx(0.5)  # c.mp4 counts 0, as in evaluation
    assert metrics["ceiling_kept_m_vIoU"] == pytest.approx(1.0)
    assert metrics["test_drop_fraction"] == 0.5 and metrics["train_drop_fraction"] == 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"]["test"]["drop_reasons"] == {"video_not_in_mask_db": 1}


def test_label_gate_passes_good_labels_and_stops_corrupt_ones(layout: dict[str, Path]) -> None:
    from stvg.checks.labels import check_labels

    assert run_stage(layout) == 0
    out = layout["out"]
    records = read_jsonl(out / "train.jsonl") + read_jsonl(out / "test.jsonl")
    drops = {
        k: v["drop_fraction"] for k, v in json.loads((out / "summary.json").read_text())["splits"].items()
    }
    assert check_labels(records, drops, max_drop_fraction=0.5).success
    # too many drops
    report = check_labels(records, drops, max_drop_fraction=0.2)
    assert not report.success and any(f["column"] == "drop_fraction" for f in report.failures)
    # a target ID missing from the DB, a reversed span and an out-of-range confidence, one each
    bad = [dict(records[0], target_in_db=False), dict(records[1], start_s=9.0, end_s=2.0, vote_share=1.5)]
    report = check_labels(bad, drops, max_drop_fraction=0.5)
    failed = {f["column"] for f in report.failures}
    assert {"target_in_db", "end_s, start_s", "vote_share"} <= failed
    # a split with nothing left fails even though no row can show it
    report = check_labels(records[:1], {"train": 0.5, "test": 1.0}, max_drop_fraction=0.5)
    assert not report.success and any("`test`" in f["why"] for f in report.failures)
    assert not check_labels([], drops, 0.5).success
