"""The paper's SAM2 path on CPU: SAM2.1-tiny (real config, random weights) at a small image size.

Random weights say nothing about mask quality (their masks cover most of the frame); these tests pin
the mechanics, read from what the stage writes: the in-memory session and the image-predictor
segmenter, then the whole prompt stage on the ``sam2`` backend over short synthetic videos (mask
database, prompted mp4, summaries): keyframes every N frames, the duplicate rule on masks, a
late-born instance traced backward, window boundaries with carried instances, and an injected GPU
out-of-memory error retried with a halved window.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import yaml

from stvg.prompting import detector as detector_module
from stvg.records import Detection

pytestmark = pytest.mark.slow

H, W, SIZE = 72, 96, 128
N_FRAMES, EVERY, WINDOW = 12, 4, 5
CFG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def square(t: int) -> tuple[float, float, float, float]:
    return (10.0 + 2 * t, 20.0, 30.0 + 2 * t, 40.0)


class LateDetector:
    """Nothing on keyframe 0; from frame 1 on one square, reported twice (a duplicate box)."""

    calls: ClassVar[list[int]] = []

    def __init__(self, *args, **kwargs):
        pass

    def detect_with_masks(self, frames, frame_indices=None):
        out = []
        for t in frame_indices:
            LateDetector.calls.append(int(t))
            x1, y1, x2, y2 = square(t)
            both = [(x1, y1, x2, y2), (x1 + 1, y1, x2 + 1, y2)]
            out.append([] if t == 0 else [(Detection(t, b, 0.9 - 0.1 * i), None) for i, b in enumerate(both)])
        return out


def write_video(path: Path) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    for t in range(N_FRAMES):
        frame = np.zeros((H, W, 3), np.uint8)
        if t >= 1:
            x1, y1, x2, y2 = (int(v) for v in square(t))
            frame[y1:y2, x1:x2] = (40, 40, 230)  # BGR
        vw.write(frame)
    vw.release()
    return path


@pytest.fixture(scope="module")
def predictor():
    from stvg.prompting.backends.sam2.session import build_predictor

    return build_predictor(CFG, "", "cpu", SIZE, 0)


def test_predictor_is_built_once_per_process(predictor):
    from stvg.prompting.backends.sam2.session import build_predictor

    assert build_predictor(CFG, "", "cpu", SIZE, 0) is predictor
    assert predictor.image_size == SIZE


def test_session_mask_prompts_forward_and_backward(predictor):
    from stvg.prompting.backends.sam2.session import Sam2Session

    frames = [np.zeros((H, W, 3), np.uint8) for _ in range(4)]
    session = Sam2Session(predictor)
    session.start(frames, first_frame=10)  # global positions 10..13
    mask = np.zeros((H, W), bool)
    mask[20:40, 10:30] = True
    session.add_mask(11, 7, mask)
    fwd = list(session.propagate(12, 2))
    bwd = list(session.propagate(11, 2, reverse=True))
    assert [f for f, _ in fwd] == [12, 13] and [f for f, _ in bwd] == [11, 10]
    for _, out in fwd + bwd:
        assert set(out) <= {7}
        for m, score in out.values():
            assert m.shape == (H, W) and m.dtype == bool and 0.0 <= score <= 1.0
    with pytest.raises(IndexError):
        session.add_mask(20, 8, mask)
    assert session.init_seconds > 0
    session.reset()


def test_the_first_frame_is_encoded_under_the_sessions_precision(predictor, monkeypatch):
    """init_state encodes frame 0 and caches its features: on CUDA under the bf16 autocast every later
    frame runs under (as SAM2's demos wrap init_state). The CPU's own bf16 autocast stands in for it."""
    import torch

    from stvg.prompting.backends.sam2 import session as session_module

    monkeypatch.setattr(
        session_module, "_precision", lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    session = session_module.Sam2Session(predictor)
    session.start([np.zeros((H, W, 3), np.uint8) for _ in range(2)])
    _, backbone_out = session._state["cached_features"][0]
    assert backbone_out["backbone_fpn"][0].dtype == torch.bfloat16  # fp32 outside the autocast
    session.reset()


def test_segmenter_turns_boxes_into_masks_at_a_small_image_size(predictor):
    from stvg.prompting.backends.sam2.session import Sam2Segmenter

    frame = np.zeros((H, W, 3), np.uint8)
    masks = Sam2Segmenter(predictor).masks(frame, [square(1), square(5)])
    assert len(masks) == 2 and all(m.shape == (H, W) and m.dtype == bool for m in masks)
    assert Sam2Segmenter(predictor).masks(frame, []) == []


def run_stage(root: Path, out: str, videos: list[Path]) -> tuple[int, dict, dict]:
    from stvg.stages import prompt as stage

    params = root / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "prompt": {
                    "backend": "sam2",
                    "sam2": {"cfg": CFG, "image_size": SIZE, "redetect_every": EVERY, "window": WINDOW},
                }
            }
        )
    )
    weights = root / "weights.pt"
    weights.write_bytes(b"scripted detector")
    argv = ["--params", str(params), "--detector", str(weights), "--out", str(root / out), "--videos"]
    rc = stage.main([*argv, *map(str, videos)])
    summary = json.loads((root / out / "summary.json").read_text())
    report = json.loads((root / "run_info" / f"{out}.json").read_text())
    return rc, summary, report


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setattr(detector_module, "YoloDetector", LateDetector)
    root = tmp_path_factory.mktemp("sam2_stage")
    videos = [write_video(root / "late.mp4")]
    LateDetector.calls.clear()
    result = run_stage(root, "prompt", videos)
    calls = list(LateDetector.calls)
    mp.undo()
    return root, result, calls


def test_the_stage_writes_a_complete_entry(stage_run):
    from stvg.prompting.maskdb import MaskDB

    root, (rc, summary, report), _ = stage_run
    assert rc == 0 and summary["backend"] == "sam2" and summary["failed"] == 0, summary
    db = MaskDB(root / "prompt")
    table = db.table("late.mp4")
    assert sorted(table.instance_id.unique()) == list(range(1, db.summary("late.mp4")["instances"] + 1))
    cap = cv2.VideoCapture(str(db.prompted_video_path("late.mp4")))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES
    cap.release()
    assert len(db.sampled_frames("late.mp4")) == len(db.sampling("late.mp4")["frame_indices"])
    timings = report["timings"]["late.mp4"]
    assert timings["init_state_s"] > 0 and timings["segment_s"] > 0, "SAM2 costs go to the run report"
    assert "timings" not in db.summary("late.mp4")


def test_keyframes_every_n_frames_and_the_duplicate_rule_on_masks(stage_run):
    from stvg.prompting.maskdb import MaskDB

    root, _, calls = stage_run
    counts = MaskDB(root / "prompt").summary("late.mp4")["counts"]
    assert calls == [0, 4, 8], "the detector runs on keyframes only"
    assert counts["keyframes"] == 3 and counts["detections"] == 4  # 0 on frame 0, 2 on 4 and 8
    assert counts["new"] == 1 and counts["duplicates"] == 1, "the second box of the square is its duplicate"
    assert counts["matched"] == 2, "keyframe 8's boxes are the tracked instance"
    decided = counts["new"] + counts["duplicates"] + counts["matched"] + counts["dropped_contained"]
    assert decided == counts["detections"] - counts["composites"]


def test_a_late_born_instance_is_traced_backward(stage_run):
    from stvg.prompting.maskdb import MaskDB

    root, _, _ = stage_run
    db = MaskDB(root / "prompt")
    counts = db.summary("late.mp4")["counts"]
    assert counts["backward_frames"] >= 1 and sum(counts["backward_stops"].values()) == counts["new"]
    assert db.table("late.mp4").frame.min() < EVERY, "rows before the keyframe it was born on"


def test_windows_are_a_memory_bound_that_carries_instances(stage_run):
    from stvg.prompting.maskdb import MaskDB

    root, _, _ = stage_run
    summary = MaskDB(root / "prompt").summary("late.mp4")
    assert summary["counts"]["windows"] == 3  # 12 frames in windows of 5
    assert summary["counts"]["carried"] >= 2, "the instance crosses both boundaries with its ID"
    assert summary["sam2"]["window"] == WINDOW and summary["sam2"]["oom_retries"] == 0
    assert summary["sam2"]["hole_filling"].startswith("off: the CPU")  # runtime.sam2_hole_filling


def test_an_injected_out_of_memory_error_is_retried_with_a_halved_window(tmp_path, monkeypatch, caplog):
    from stvg.prompting.backends.sam2 import session as sam2_session

    monkeypatch.setattr(detector_module, "YoloDetector", LateDetector)
    real = sam2_session.Sam2Session.start

    def start(self, frames, first_frame=0):
        if len(frames) > 3:  # a window this long does not fit
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, frames, first_frame)

    monkeypatch.setattr(sam2_session.Sam2Session, "start", start)
    with caplog.at_level(logging.WARNING):
        rc, summary, _ = run_stage(tmp_path, "prompt", [write_video(tmp_path / "late.mp4")])
    assert rc == 0 and summary["failed"] == 0
    from stvg.prompting.maskdb import MaskDB

    entry = MaskDB(tmp_path / "prompt").summary("late.mp4")
    assert entry["sam2"]["window"] == 2 and entry["sam2"]["oom_retries"] == 1
    assert entry["counts"]["windows"] == 6, "12 frames in windows of 2"
    assert "GPU out of memory" in caplog.text and "retrying with window=2" in caplog.text
