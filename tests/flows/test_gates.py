"""The flow's stage gates (flows/hooks.py) on real stage outputs: every stage is gated, and the label
gate checks targets against the prompt stage's mask database itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows import dvc, hooks
from flows.pipeline import STAGES
from stvg.config import load_params
from stvg.io import read_jsonl, write_jsonl_atomic
from stvg.prompting.maskdb import MaskDB
from stvg.stages.label import main as label_main
from tests.stages.test_label import GT_BOX, OTHER, add_video, hcstvg_entry

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_dvc_stage_has_a_gate() -> None:
    gated = {s.name for s in STAGES if s.check is not None}
    assert set(dvc.pipeline_stages(REPO_ROOT)) <= gated


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """A project root whose artifacts/label was written by the real label stage from artifacts/prompt."""
    data = tmp_path / "data"
    (data / "anno").mkdir(parents=True)
    (data / "videos").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (data / "videos" / name).write_bytes(b"")
    (data / "anno" / "train_v2.json").write_text(json.dumps({"a.mp4": hcstvg_entry(5, 5)}))
    (data / "anno" / "val_v2.json").write_text(json.dumps({"b.mp4": hcstvg_entry(3, 8)}))
    (tmp_path / "params.yaml").write_text(
        "data:\n  dataset: hcstvg-v2\n  train_annotation: anno/train_v2.json\n"
        "  test_annotation: anno/val_v2.json\n  video_root: videos\n"
    )
    db = MaskDB(tmp_path / "artifacts" / "prompt")
    add_video(db, "a.mp4", {f: {1: GT_BOX, 2: OTHER} for f in range(20)})
    add_video(db, "b.mp4", {f: {1: OTHER, 2: GT_BOX} for f in range(20)})
    args = ["--params", str(tmp_path / "params.yaml"), "--data-dir", str(data)]
    args += [
        "--prompt-dir",
        str(tmp_path / "artifacts" / "prompt"),
        "--out",
        str(tmp_path / "artifacts" / "label"),
    ]
    assert label_main(args) == 0
    return tmp_path


def test_label_gate_passes_the_label_stage_output(labelled: Path) -> None:
    report = hooks.check_label(labelled, load_params(labelled / "params.yaml"))
    assert report.success, report.message()


def test_label_gate_catches_a_corrupted_target_id(labelled: Path) -> None:
    path = labelled / "artifacts" / "label" / "test.jsonl"
    (record,) = read_jsonl(path)
    assert record["target_id"] == 2 and record["target_in_db"]
    write_jsonl_atomic(path, [record | {"target_id": 5}])  # target_in_db still says True
    report = hooks.check_label(labelled, load_params(labelled / "params.yaml"))
    assert not report.success
    (failure,) = report.failures
    assert failure["column"] == "target_in_prompt_db" and failure["examples"] == [record["sample_id"]]
    assert record["sample_id"] in report.message()


def test_label_gate_catches_a_mask_db_without_that_instance(labelled: Path) -> None:
    (record,) = read_jsonl(labelled / "artifacts" / "label" / "train.jsonl")
    assert record["target_id"] == 1
    # The mask DB changed under the labels (e.g. re-prompted): a.mp4 now holds instance 2 only.
    add_video(MaskDB(labelled / "artifacts" / "prompt"), "a.mp4", {f: {2: GT_BOX} for f in range(20)})
    report = hooks.check_label(labelled, load_params(labelled / "params.yaml"))
    assert [f["examples"] for f in report.failures] == [[record["sample_id"]]]


def _prompt_summary(root: Path, failed: list[str], videos: int) -> None:
    failures = [{"video_id": v, "error": f"ValueError: {v} cannot be decoded"} for v in failed]
    summary = {"videos": videos, "failures": failures, "failed": len(failed)}
    (root / "artifacts" / "prompt" / "summary.json").write_text(json.dumps(summary))


def test_prompt_gate_fails_past_the_failed_share_naming_the_failed_videos(labelled: Path) -> None:
    from stvg.checks.core import merge_reports

    failed = [f"broken{i}.mp4" for i in range(5)]
    _prompt_summary(labelled, failed, videos=8)
    params = load_params(labelled / "params.yaml")
    report = merge_reports("prompt", hooks.check_prompt(labelled, params))
    assert not report.success
    (failure,) = [f for f in report.failures if f["suite"] == "prompt_failures"]
    assert sorted(failure["examples"]) == [f"{v} (ValueError: {v} cannot be decoded)" for v in failed]
    assert "5 of 8 failed" in report.message() and "prompt.max_failed_fraction" in report.message()


def test_prompt_gate_tolerates_failures_within_the_bound(labelled: Path) -> None:
    _prompt_summary(labelled, ["broken.mp4"], videos=40)  # 0.025 <= the 0.05 default
    failures_report, _ = hooks.check_prompt(labelled, load_params(labelled / "params.yaml"))
    assert failures_report.success, failures_report.message()
