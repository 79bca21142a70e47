"""The policy's frames and frame size against ``qwen_vl_utils``' video sampling (restated in
tests/reference) on random videos: frame count, indices and the per-frame size, whose pixel cap is
a float there (a truncated cap shrinks some frames by a 28-px step: 12.5 % fewer visual tokens)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from stvg.config import SamplingParams
from stvg.prompting.sampling import plan_sampling
from tests.reference import qwen_video as ref

P = SamplingParams(total_pixels=2048 * 28 * 28, min_pixels=16 * 28 * 28)


def test_frames_and_sizes_agree_with_qwen_vl_utils() -> None:
    rng = np.random.default_rng(28)
    sizes = [(360, 640), (720, 1280), (240, 320), (1080, 1920), (480, 854), (362, 640), (96, 128)]
    differ_if_truncated = 0
    for case in range(300):
        fps = float(rng.choice([5.0, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0, 60.0]))
        n = int(rng.integers(8, 2400))
        h, w = (
            sizes[case % len(sizes)]
            if case % 3
            else (int(rng.integers(60, 1100)), int(rng.integers(60, 1100)))
        )
        total = int(rng.choice([2048, 3584, 768, 16384])) * 28 * 28
        p = replace(P, total_pixels=total)
        plan = plan_sampling(n, fps, w, h, p)
        k = ref.n_frames(n, fps)
        assert plan.n_samples == k, (n, fps)
        expected = torch.linspace(0, n - 1, k).round().long().tolist()
        assert list(plan.frame_indices) == expected
        assert (plan.out_height, plan.out_width) == ref.frame_size(h, w, k, total, p.min_pixels), (h, w, k)
        capped = max(min(ref.VIDEO_MAX_PIXELS, total / k * 2), int(p.min_pixels * 1.05))
        differ_if_truncated += ref.frame_size(h, w, k, total, p.min_pixels) != _truncated(h, w, capped, p)
    assert differ_if_truncated > 0  # the float cap matters on this set


def _truncated(h: int, w: int, cap: float, p: SamplingParams) -> tuple[int, int]:
    from stvg.prompting.sampling import smart_resize

    return smart_resize(h, w, 28, p.min_pixels, int(cap))


def test_the_640x360_18s_example() -> None:
    """Bug 8: 36 frames, cap 89,201.8 px: 224x392 (the truncated cap gives 196x392)."""
    plan = plan_sampling(540, 30.0, 640, 360, P)
    assert (plan.n_samples, plan.out_height, plan.out_width) == (36, 224, 392)
    assert ref.frame_size(360, 640, 36, P.total_pixels, P.min_pixels) == (224, 392)


def test_the_bicubic_option_is_qwen_vl_utils_resize_kernel() -> None:
    """``prompt.sampling.resize: bicubic`` = torchvision's resize (bicubic, antialiased) on float pixels."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf

    from stvg.prompting.render import resize_frame

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    video = torch.from_numpy(frame).permute(2, 0, 1)[None].float()  # qwen-vl-utils: (T, C, H, W) float
    official = tvf.resize(video, [224, 392], interpolation=InterpolationMode.BICUBIC, antialias=True)
    expected = official[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    ours = resize_frame(frame, (392, 224), "bicubic")
    np.testing.assert_array_equal(ours, expected)
    assert not np.array_equal(resize_frame(frame, (392, 224), "area"), ours)  # the default differs
