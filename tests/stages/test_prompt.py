"""The prompt stage on tmp_path: incremental content-addressed database, isolation of bad videos, atomicity.

Videos are tiny mp4s of coloured squares on black; ``ColourDetector`` finds the squares from the
pixels (connected components), so the CPU backend (real BYTETrack) runs on real decoded frames
without a trained YOLO.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stvg.prompting import detector as detector_module
from stvg.prompting.maskdb import MaskDB
from stvg.records import Detection
from stvg.stages import prompt as stage

W, H = 96, 72


class ColourDetector:
    """Boxes of the non-black connected components of each frame (a stand-in YOLO)."""

    def __init__(self, weights, conf=0.25, classes=(), imgsz=None, device="cpu", **_):
        self.weights = weights

    def detect_with_masks(self, frames, frame_indices=None):
        out = []
        for i, f in enumerate(frames):
            fg = (f.max(axis=2) > 60).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
            dets = []
            for k in range(1, n):
                x, y, w, h, area = stats[k]
                if area >= 20:
                    fi = frame_indices[i] if frame_indices is not None else i
                    dets.append(
                        (Detection(fi, (float(x), float(y), float(x + w), float(y + h)), 0.9), labels == k)
                    )
            out.append(dets)
        return out


class CentreDetector(ColourDetector):
    """One fixed box in the middle of every frame (for real clips, whatever they show)."""

    def detect_with_masks(self, frames, frame_indices=None):
        out = []
        for i, f in enumerate(frames):
            h, w = f.shape[:2]
            out.append([(Detection(i, (w * 0.3, h * 0.3, w * 0.7, h * 0.7), 0.9), None)])
        return out


def write_squares(path: Path, n: int = 20, seed: int = 0, fps: float = 10.0, empty: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    starts = rng.uniform(5, 40, size=(2, 2))
    colours = [(255, 0, 0), (0, 200, 255)]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for t in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        if not empty:
            for (x0, y0), c in zip(starts, colours, strict=True):
                x, y = int(x0 + 1.5 * t) % (W - 14), int(y0)
                cv2.rectangle(frame, (x, y), (x + 12, y + 12), c, -1)
        vw.write(frame)
    vw.release()
    return path


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(detector_module, "YoloDetector", ColourDetector)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not a real model: the detector is scripted")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prompt": {"track_fps": 0.0}}))
    videos = tmp_path / "videos"
    videos.mkdir()
    return tmp_path, weights, params, videos


def run_stage(tmp: Path, weights: Path, params: Path, *videos: Path) -> tuple[int, dict]:
    """Exit code and the stage summary merged with the run report (what this run did)."""
    out = tmp / "prompt"
    rc = stage.main(
        [
            "--params",
            str(params),
            "--detector",
            str(weights),
            "--out",
            str(out),
            "--videos",
            *map(str, videos),
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((tmp / "run_info" / "prompt.json").read_text())
    assert not set(summary) & set(report) - {"failed"}, "the hashed summary holds no run facts"
    return rc, {**summary, **report}


def test_incremental_and_param_change(setup):
    tmp, weights, params, vdir = setup
    a, b, c = (write_squares(vdir / f"{k}.mp4", seed=i) for i, k in enumerate("abc"))
    rc, s = run_stage(tmp, weights, params, a, b)
    assert rc == 0 and s["processed"] == 2 and s["failed"] == 0
    db = MaskDB(tmp / "prompt")
    assert db.video_ids() == ["a.mp4", "b.mp4"]
    assert db.instance_ids("a.mp4") == [1, 2]
    assert db.sampled_frames("a.mp4").ndim == 4
    first_dirs = {v: db.entry_dir(v) for v in db.video_ids()}

    rc, s = run_stage(tmp, weights, params, a, b, c)
    assert (s["processed"], s["reused"]) == (1, 2), "only the new video is prompted"

    params.write_text(yaml.safe_dump({"prompt": {"repair": {"merge_max_gap_s": 1.0}}}))
    rc, s = run_stage(tmp, weights, params, a, b, c)
    assert (s["processed"], s["reused"]) == (3, 0), "a changed prompting param re-prompts all"
    db = MaskDB(tmp / "prompt")
    assert all(not d.exists() for d in first_dirs.values()), "old entries are pruned"
    assert len(list((tmp / "prompt" / "videos").iterdir())) == 3

    rc, s = run_stage(tmp, weights, params, a)
    assert s["pruned"] == ["b.mp4", "c.mp4"] and MaskDB(tmp / "prompt").video_ids() == ["a.mp4"]


def test_changed_prompting_code_re_prompts_all(setup, monkeypatch: pytest.MonkeyPatch):
    tmp, weights, params, vdir = setup
    a, b = (write_squares(vdir / f"{k}.mp4", seed=i) for i, k in enumerate("ab"))
    from stvg.prompting import backends

    code = backends.code_hash("synthetic_cpu")
    assert len(code) == 64 and backends.code_hash("synthetic_cpu") == code  # stable for unchanged code
    assert run_stage(tmp, weights, params, a, b)[1]["processed"] == 2
    assert run_stage(tmp, weights, params, a, b)[1]["reused"] == 2
    # an edited repair rule (what dvc re-runs the stage for) must not be served the old entries
    monkeypatch.setattr(backends, "code_hash", lambda backend: "0" * 64)
    rc, s = run_stage(tmp, weights, params, a, b)
    assert rc == 0 and (s["processed"], s["reused"]) == (2, 0)


def test_bad_videos_are_isolated_and_reported(setup):
    tmp, weights, params, vdir = setup
    good = write_squares(vdir / "good.mp4")
    corrupt = vdir / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    black = write_squares(vdir / "black.mp4", empty=True)
    rc, s = run_stage(tmp, weights, params, good, corrupt, black)
    assert rc == 0
    assert s["processed"] == 1 and s["failed"] == 2
    errors = {f["video_id"]: f["error"] for f in s["failures"]}
    assert "corrupt.mp4" in errors["corrupt.mp4"] and "VideoError" in errors["corrupt.mp4"]
    assert "nothing detected" in errors["black.mp4"]
    assert MaskDB(tmp / "prompt").video_ids() == ["good.mp4"]
    rc, s = run_stage(tmp, weights, params, corrupt)
    assert rc == 1, "the stage fails only when every video failed"


def test_a_crash_mid_entry_leaves_nothing_and_the_run_resumes(setup, monkeypatch):
    tmp, weights, params, vdir = setup
    a, b = write_squares(vdir / "a.mp4"), write_squares(vdir / "b.mp4", seed=3)
    from stvg.prompting import maskdb

    real = maskdb.write_entry
    calls = {"n": 0}

    def crash_on_second(folder, *args, **kw):
        calls["n"] += 1
        real(folder, *args, **kw)
        if calls["n"] == 2:
            raise KeyboardInterrupt  # a kill between files: not an ordinary per-video failure

    monkeypatch.setattr(maskdb, "write_entry", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp, weights, params, a, b)
    db = MaskDB(tmp / "prompt")
    assert db.video_ids() == ["a.mp4"]
    leftovers = [p.name for p in (tmp / "prompt" / "videos").iterdir()]
    assert len(leftovers) == 1 and not any(n.startswith(".partial") for n in leftovers)

    monkeypatch.setattr(maskdb, "write_entry", real)
    _, s = run_stage(tmp, weights, params, a, b)
    assert (s["processed"], s["reused"]) == (1, 1)


def test_maskdb_retrieval_and_check_suite(setup):
    tmp, weights, params, vdir = setup
    run_stage(tmp, weights, params, write_squares(vdir / "a.mp4", n=30))
    db = MaskDB(tmp / "prompt")
    t = db.table("a.mp4")
    assert list(t.columns) == [
        "frame",
        "time_s",
        "instance_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "area",
        "score",
        "rle",
    ]
    tube = db.tube("a.mp4", 1, 1.0, 2.0)
    assert tube and all(1.0 <= f / 10.0 <= 2.0 for f in tube)
    f0 = min(tube)
    m = db.mask("a.mp4", f0, 1)
    assert m is not None and m.shape == (H, W) and m.any()
    x1, y1, x2, y2 = tube[f0]
    ys, xs = np.nonzero(m)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2), "box is the mask's tight box"
    assert db.boxes_by_frame("a.mp4")[f0][1] == tube[f0]
    assert db.mask("a.mp4", 10_000, 1) is None
    smp = db.sampling("a.mp4")
    assert {"native_fps", "n_frames", "frame_indices", "times_s", "fps"} <= set(smp)
    assert db.summary("a.mp4")["instances"] == 2
    cap = cv2.VideoCapture(str(db.prompted_video_path("a.mp4")))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()

    from stvg.checks.prompt import check_prompt, prompt_table

    assert check_prompt(db).success
    bad = prompt_table(db)
    bad.loc[0, "ids_consecutive"] = False
    from stvg.checks.core import run_suite
    from stvg.checks.prompt import PROMPT_EXPECTATIONS

    report = run_suite("prompt", bad, PROMPT_EXPECTATIONS, id_column="video_id")
    assert not report.success and "a.mp4" in report.message()


def test_real_clips_decode_and_go_through_the_stage(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(detector_module, "YoloDetector", CentreDetector)
    clips = sorted((shared_data / "videos").glob("*.mp4"))
    assert clips, "no real clips"
    from stvg.prompting.video import VideoFrames

    for clip in clips:
        with VideoFrames(clip, max_frames=3) as v:
            frames = v.read(0, 3)
            assert len(frames) == 3 and frames[0].shape == (v.meta.height, v.meta.width, 3)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prompt": {"max_frames": 12, "track_fps": 5.0}}))
    rc, s = run_stage(tmp_path, weights, params, *clips)
    assert rc == 0 and s["processed"] == len(clips), s["failures"]
    db = MaskDB(tmp_path / "prompt")
    for clip in clips:
        summ = db.summary(clip.name)
        assert summ["tracked_frames"] == 12 and summ["width"] > 0
        assert db.table(clip.name).frame.max() > 11, "track_fps thins native frames"


def broken_rate(path: Path, seconds_per_frame: int) -> Path:
    """Rewrite an mp4's sample duration (``stts``) so its header states ~0 fps: frames thousands of
    seconds apart, which OpenCV cannot step through past the first one."""
    data = bytearray(path.read_bytes())
    at = data.index(b"stts") + 12  # box type, version/flags, entry count; then (count, delta) pairs
    mdhd = data.index(b"mdhd") + 16  # past version/flags and the creation and modification times
    timescale = int.from_bytes(data[mdhd : mdhd + 4], "big")
    data[at + 4 : at + 8] = (seconds_per_frame * timescale).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_failures_name_their_real_cause(setup):
    tmp, weights, params, vdir = setup
    one_frame = write_squares(vdir / "one_frame.mp4", n=1)
    slow = broken_rate(write_squares(vdir / "zero_fps.mp4", n=12), seconds_per_frame=16000)
    good = write_squares(vdir / "good.mp4")
    rc, s = run_stage(tmp, weights, params, one_frame, slow, good)
    assert rc == 0 and s["processed"] == 1
    errors = {f["video_id"]: f["error"] for f in s["failures"]}
    # the detector did find the squares: the cause is the track length, and the message says so
    assert "prompt.repair.min_track_frames = 2" in errors["one_frame.mp4"], errors
    assert "detector found 2 box(es) in 1 tracked frame(s)" in errors["one_frame.mp4"]
    assert "check detector.weights" not in errors["one_frame.mp4"]
    assert "frame rate" in errors["zero_fps.mp4"] and "6.25e-05 fps" in errors["zero_fps.mp4"], errors
    assert "truncated" not in errors["zero_fps.mp4"]
