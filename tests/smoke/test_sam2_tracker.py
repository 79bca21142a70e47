"""SAM2 backend on CPU with random weights built from the real SAM2.1 config at a small image size.

Random weights say nothing about mask quality; these tests pin the adapter: the in-memory
``init_state``, box and mask prompts, forward and backward propagation, output shapes, and the
engine's windowed keyframe loop on top of it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stvg.config import PromptParams
from stvg.records import Detection

pytestmark = pytest.mark.slow

H, W, SIZE = 48, 64, 128


@pytest.fixture(scope="module")
def predictor():
    import torch
    from stvg.prompting.sam2_tracker import build_predictor

    torch.manual_seed(0)
    return build_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", "", "cpu", SIZE)


def frames(n: int) -> list[np.ndarray]:
    out = []
    for t in range(n):
        f = np.zeros((H, W, 3), np.uint8)
        f[10:26, 5 + 2 * t : 21 + 2 * t] = (255, 40, 40)
        out.append(f)
    return out


def test_predictor_is_built_once(predictor):
    from stvg.prompting.sam2_tracker import build_predictor

    assert build_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", "", "cpu", SIZE) is predictor
    assert predictor.image_size == SIZE


def test_box_prompt_forward_and_backward(predictor):
    from stvg.prompting.sam2_tracker import Sam2Tracker

    tr = Sam2Tracker(predictor)
    tr.start(frames(4), first_frame=10)  # global positions 10..13
    mask = tr.add_box(11, 7, (7.0, 10.0, 23.0, 26.0))
    assert mask.shape == (H, W) and mask.dtype == bool
    fwd = list(tr.propagate(12, 2))
    assert [f for f, _ in fwd] == [12, 13]
    bwd = list(tr.propagate(10, 1, reverse=True))
    assert [f for f, _ in bwd] == [10]
    for _, out in fwd + bwd:
        assert set(out) <= {7}
        for m, score in out.values():
            assert m.shape == (H, W) and 0.0 <= score <= 1.0
    with pytest.raises(IndexError):
        tr.add_box(20, 8, (0, 0, 5, 5))
    tr.reset()
    tr.start(frames(3), first_frame=0)
    assert [f for f, out in tr.propagate(0, 3)] == [0, 1, 2], "an empty session yields empty frames"
    tr.add_mask(0, 1, np.ones((H, W), bool))
    assert [f for f, _ in tr.propagate(1, 2)] == [1, 2]
    tr.close()


def test_engine_windows_and_backward_pass_with_sam2(predictor):
    from stvg.prompting.sam2_tracker import Sam2Tracker

    from stvg.prompting.engine import track_keyframes
    from stvg.prompting.video import ArrayFrames

    class LateDetector:
        """Nothing on keyframe 0, one object from keyframe 3 on."""

        def detect_with_masks(self, frames, frame_indices=None):
            return [
                [] if f < 3 else [(Detection(f, (5.0 + 2 * f, 10.0, 21.0 + 2 * f, 26.0), 0.9), None)]
                for f in frame_indices
            ]

    calls = []

    def make():
        calls.append(1)
        return Sam2Tracker(predictor)

    p = dataclasses.replace(PromptParams(), backend="sam2", redetect_every=3, window=3, sam2_image_size=SIZE)
    raw = track_keyframes(ArrayFrames(frames(5)), LateDetector(), make, p)
    assert list(raw.tracks) == [1]
    assert max(raw.tracks[1]) == 4 and 3 in raw.tracks[1]
    assert raw.counts["keyframes"] == 2
    assert len(calls) == 2, "one forward session object and one backward session object"
    assert raw.timings["backward_s"] > 0
