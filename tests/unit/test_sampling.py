"""The policy's frame sampling plan follows qwen-vl-utils' arithmetic exactly and maps seconds <-> frames."""

from __future__ import annotations

import json
import math

import pytest

from stvg.config import SamplingParams
from stvg.prompting.sampling import (
    FPS_MAX_FRAMES,
    SamplingPlan,
    frame_pixel_cap,
    linspace_indices,
    plan_sampling,
    sample_index_to_frame,
    sample_index_to_second,
    second_to_sample_index,
    smart_nframes,
    smart_resize,
)

P = SamplingParams()  # paper/code budget: fps 2, total 2048*28*28, min 16*28*28, max 768*28*28

VIDEOS = [  # (n_frames, native fps, width, height)
    (500, 25.0, 1280, 720),  # a 20-s HC-STVG-like clip
    (80, 10.0, 320, 240),  # the synthetic benchmark
    (601, 29.97, 640, 360),
    (7, 30.0, 1920, 1080),  # very short: fewer frames than the 4-frame minimum
    (40000, 30.0, 854, 480),  # long: capped at 768 frames
    (3000, 24.0, 480, 1920),  # portrait
]


@pytest.mark.parametrize(("n", "fps", "w", "h"), VIDEOS)
def test_plan_has_even_frames_multiple_of_28_dims_and_respects_the_budget(n, fps, w, h):
    plan = plan_sampling(n, fps, w, h, P)
    k = plan.n_samples
    assert k % 2 == 0 and 2 <= k <= min(n, FPS_MAX_FRAMES)
    assert plan.out_height % 28 == 0 and plan.out_width % 28 == 0
    per_frame = plan.out_height * plan.out_width
    assert per_frame <= frame_pixel_cap(k, P)
    # Two frames share a temporal patch, so the total budget holds for k/2 frames' pixels.
    if frame_pixel_cap(k, P) > P.min_pixels * 1.05:
        assert k // 2 * per_frame <= P.total_pixels
    assert list(plan.frame_indices) == sorted(set(plan.frame_indices))
    assert plan.frame_indices[0] == 0 and plan.frame_indices[-1] == n - 1
    assert plan.times_s == tuple(i / fps for i in plan.frame_indices)
    assert plan.fps == pytest.approx(k / n * fps)
    # Aspect ratio kept within one 28-px step.
    assert (
        abs(plan.out_width / plan.out_height - w / h)
        < 28 / min(plan.out_height, plan.out_width) * (w / h) + 1e-9
    )


def test_twenty_second_clip_matches_the_reference_budget():
    """REFERENCE 7.2: 20 s -> 40 frames, per-frame cap min(768*784, total*2/40) ~ 80,282 px."""
    plan = plan_sampling(500, 25.0, 1280, 720, P)
    assert plan.n_samples == 40
    assert frame_pixel_cap(40, P) == 2048 * 28 * 28 * 2 / 40  # a float, as qwen-vl-utils keeps it
    assert plan.out_height * plan.out_width <= 80282
    assert 1800 <= plan.visual_tokens <= 2048


def test_the_per_frame_cap_stays_a_float_as_in_qwen_vl_utils():
    """640x360 for 18 s at 2 fps: 36 frames; the cap 89,201.8 px gives 224x392 (truncated: 196x392)."""
    plan = plan_sampling(540, 30.0, 640, 360, P)
    assert plan.n_samples == 36
    assert (plan.out_height, plan.out_width) == (224, 392)
    assert plan.visual_tokens == 18 * 8 * 14  # 12.5 % more than the 18 * 7 * 14 of a truncated cap


def test_requested_rate_is_what_the_policy_sees():
    plan = plan_sampling(600, 30.0, 640, 360, SamplingParams(fps=1.0))
    assert plan.n_samples == 20 and plan.fps == pytest.approx(1.0)
    assert plan.requested_fps == 1.0


def test_short_and_broken_videos():
    assert smart_nframes(3, 30.0) == 2
    assert smart_nframes(5, 30.0) == 4  # the 4-frame minimum wins over 2 fps
    with pytest.raises(ValueError, match="at least 2 frames"):
        smart_nframes(1, 30.0)
    with pytest.raises(ValueError, match="fps"):
        plan_sampling(100, 0.0, 64, 64, P)


def test_indices_match_torch_linspace_round():
    torch = pytest.importorskip("torch")
    for n in (2, 3, 17, 100, 251, 500, 1201):
        for k in {2, 4, min(n, 40) // 2 * 2, min(n, 768) // 2 * 2}:
            expected = torch.linspace(0, n - 1, k).round().long().tolist()
            assert linspace_indices(n, k) == expected, (n, k)


def test_resize_matches_transformers_qwen2_vl_smart_resize():
    hf = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    for h, w in [(720, 1280), (240, 320), (360, 640), (1080, 1920), (1920, 480), (100, 3000), (57, 85)]:
        for max_px in (80281, 200704, 602112):
            assert smart_resize(h, w, 28, P.min_pixels, max_px) == hf.smart_resize(
                h, w, 28, P.min_pixels, max_px
            )


def test_effective_fps_matches_transformers_video_metadata():
    video_utils = pytest.importorskip("transformers.video_utils")
    plan = plan_sampling(601, 29.97, 640, 360, P)
    meta = video_utils.VideoMetadata(total_num_frames=601, fps=29.97, frames_indices=list(plan.frame_indices))
    assert meta.sampled_fps == pytest.approx(plan.fps)
    assert meta.timestamps == pytest.approx(list(plan.times_s))


def test_round_trip_through_json():
    plan = plan_sampling(80, 10.0, 320, 240, P)
    again = SamplingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    with pytest.raises(ValueError, match="malformed"):
        SamplingPlan.from_dict({"frame_indices": [0]})


def test_seconds_and_sample_indices_map_both_ways():
    plan = plan_sampling(80, 10.0, 320, 240, P)  # 16 frames over 8 s
    for i in range(plan.n_samples):
        t = sample_index_to_second(plan, i)
        assert second_to_sample_index(plan, t) == i
        assert sample_index_to_frame(plan, i) == plan.frame_indices[i]
        assert math.isclose(t, plan.frame_indices[i] / 10.0)
    assert second_to_sample_index(plan, -5.0) == 0
    assert second_to_sample_index(plan, 1e6) == plan.n_samples - 1
    # Halfway between two samples goes to the nearer one.
    t0, t1 = plan.times_s[3], plan.times_s[4]
    assert second_to_sample_index(plan, t0 + 0.4 * (t1 - t0)) == 3
    assert second_to_sample_index(plan, t0 + 0.6 * (t1 - t0)) == 4
    with pytest.raises(IndexError):
        sample_index_to_second(plan, plan.n_samples)
