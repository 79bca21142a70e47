"""The prompt stage's output is a pure function of its inputs: entries do not depend on what else the
process prompted before, on the order, on a subset run in a fresh process, or on the clock.

Videos are short synthetic-benchmark clips (textured background, flat-coloured shapes) and the
detector is box-only (boxes of the saturated components), so every mask comes from GrabCut and every
identity from BoT-SORT with colour features: the CPU backend's whole path on real decoded frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stvg.config import SyntheticParams
from stvg.prompting import detector as detector_module
from stvg.records import Detection
from stvg.stages import prompt as stage

REPO = Path(__file__).resolve().parents[2]
CLIP = SyntheticParams(
    width=160, height=120, fps=10.0, duration_s=3.0, shape_size=(18, 30), min_instances=3, max_instances=4
)


class BoxDetector:
    """Box-only detections of the saturated components of each frame (masks then come from GrabCut)."""

    def __init__(self, weights, conf=0.25, classes=(), imgsz=None, device="cpu", **_):
        self.weights = weights

    def detect_with_masks(self, frames, frame_indices=None):
        out = []
        for i, frame in enumerate(frames):
            hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
            fg = ((hsv[..., 1] > 120) & (hsv[..., 2] > 80)).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(fg)
            dets = []
            for k in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[k])
                if area >= 40:  # sub-pixel offsets as a real detector's boxes have
                    box = (x + 0.4, y - 0.3, x + w + 0.7, y + h + 0.2)
                    dets.append((Detection(int(frame_indices[i]), box, 0.5 + area % 40 / 100), None))
            out.append(dets)
        return out


def write_clips(folder: Path, n: int = 3) -> list[Path]:
    from stvg.data.synthetic import build_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        video = build_video(CLIP, "val", i)
        path = folder / f"clip{i}.mp4"
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP.fps, (CLIP.width, CLIP.height))
        for frame in video.frames:
            vw.write(np.ascontiguousarray(frame[..., ::-1]))
        vw.release()
        paths.append(path)
    return paths


def tree_hash(folder: Path) -> str:
    """A DVC-style directory hash: every file's relative path and content."""
    digest = hashlib.md5()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(
            f"{f.relative_to(folder).as_posix()} {hashlib.md5(f.read_bytes()).hexdigest()}\n".encode()
        )
    return digest.hexdigest()


def entry_hashes(out: Path) -> dict[str, str]:
    index = json.loads((out / "index.json").read_text())["entries"]
    return {vid: tree_hash(out / e["dir"]) for vid, e in index.items()}


def json_keys(obj: object) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(obj, dict):
        return set(obj).union(*(json_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(json_keys(v) for v in obj))
    return set()


def stage_argv(params: Path, weights: Path, out: Path, videos: list[Path]) -> list[str]:
    return [
        "--params",
        str(params),
        "--detector",
        str(weights),
        "--out",
        str(out),
        "--videos",
        *map(str, videos),
    ]


def main_with_box_detector(argv: list[str]) -> int:
    """``stvg prompt`` with ``BoxDetector`` (run in a fresh process by the tests)."""
    detector_module.YoloDetector = BoxDetector
    return stage.main(argv)


@pytest.fixture()
def clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(detector_module, "YoloDetector", BoxDetector)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"scripted detector")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prompt": {"repair": {"min_track_frames": 2}}}))
    return tmp_path, params, weights, write_clips(tmp_path / "videos")


@pytest.mark.slow
def test_entries_do_not_depend_on_what_the_process_prompted_before(clips):
    tmp, params, weights, videos = clips
    whole = tmp / "whole"
    assert stage.main(stage_argv(params, weights, whole, videos)) == 0
    # the last two again, in a fresh process (what a run resumed after a kill does), then the first
    resumed = tmp / "resumed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    code = (
        "import sys; from tests.stages.test_prompt_determinism import main_with_box_detector as m; "
        "sys.exit(m(sys.argv[1:]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, *stage_argv(params, weights, resumed, videos[1:])],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    assert stage.main(stage_argv(params, weights, resumed, videos)) == 0
    assert entry_hashes(resumed) == entry_hashes(whole), "each entry is byte-identical"
    assert tree_hash(resumed) == tree_hash(whole), "so is the whole database (its DVC version)"
    report = json.loads((tmp / "run_info" / "resumed.json").read_text())
    assert (report["processed"], report["reused"]) == (1, 2)


@pytest.mark.slow
def test_engine_results_do_not_depend_on_the_order(clips):
    from stvg.config import PromptParams
    from stvg.prompting.engine import prompt_video

    _, _, weights, videos = clips
    detector = BoxDetector(weights)

    def tables(order: list[Path]) -> dict[str, bytes]:
        out = {}
        for path in order:
            result = prompt_video(path, PromptParams(), detector, video_id=path.name)
            out[path.name] = result.table.to_csv().encode() + json.dumps(result.summary).encode()
        return out

    assert tables(videos) == tables(videos[::-1])


def test_the_stage_twice_gives_the_same_bytes_and_keeps_timings_out(clips):
    tmp, params, weights, videos = clips
    first, second = tmp / "first", tmp / "second"
    assert stage.main(stage_argv(params, weights, first, videos[:2])) == 0
    assert stage.main(stage_argv(params, weights, second, videos[:2])) == 0
    assert tree_hash(first) == tree_hash(second)
    run_facts = {"timings", "total_s", "frames_per_s", "wall_seconds", "finished_at", "host", "processed"}
    for f in first.rglob("*.json"):
        assert not json_keys(json.loads(f.read_text())) & run_facts, f
    report = json.loads((tmp / "run_info" / "first.json").read_text())
    assert report["processed"] == 2 and set(report["timings"]) == {v.name for v in videos[:2]}
    assert report["timings"]["clip0.mp4"]["total_s"] > 0 and report["host"]
