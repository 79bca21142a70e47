"""Red numeric ID overlays: colour, placement inside the mask, scale with resolution, atomic mp4 writing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from stvg.config import RenderParams
from stvg.prompting.render import FONT, draw_ids, font_scale, font_thickness, label_anchor, write_video

P = RenderParams()


def disk(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (cx, cy), r, 1, -1)
    return m.astype(bool)


def ring(h=200, w=200, cx=100, cy=100, r_out=60, r_in=45) -> np.ndarray:
    return disk(h, w, cx, cy, r_out) & ~disk(h, w, cx, cy, r_in)


def c_shape(h=200, w=200) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[40:160, 40:70] = True  # spine
    m[40:65, 40:160] = True  # top arm
    m[135:160, 40:160] = True  # bottom arm
    return m


def thin_diagonal(h=120, w=160) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.line(m, (5, 110), (150, 8), 1, 1)
    return m.astype(bool)


def l_shape(h=100, w=100) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[10:90, 10:25] = True
    m[75:90, 10:90] = True
    return m


@pytest.mark.parametrize("make", [ring, c_shape, thin_diagonal, l_shape])
def test_distance_anchor_lies_inside_awkward_masks(make):
    mask = make()
    x, y = label_anchor(mask, "distance")
    assert mask[y, x]


def test_midrow_follows_the_official_rule_and_can_fall_outside_a_ring():
    mask = ring()
    x, y = label_anchor(mask, "midrow")
    ys, _ = np.nonzero(mask)
    assert y == (ys.min() + ys.max()) // 2
    assert x == int(np.nonzero(mask[y])[0].mean())
    assert not mask[y, x]  # the hole: why `distance` is the default
    assert mask[label_anchor(mask, "distance")[::-1]]


def test_midrow_falls_back_to_the_box_centre_on_an_empty_middle_row():
    mask = np.zeros((50, 50), bool)
    mask[5:10, 10:20] = True
    mask[40:45, 30:40] = True
    assert label_anchor(mask, "midrow") == ((10 + 39) // 2, (5 + 44) // 2)


def test_anchor_moves_with_the_mask():
    a = disk(240, 320, 80, 100, 25)
    b = np.roll(np.roll(a, 37, axis=1), 11, axis=0)
    (xa, ya), (xb, yb) = label_anchor(a), label_anchor(b)
    assert (xb - xa, yb - ya) == (37, 11)


def test_anchor_rejects_empty_masks_and_unknown_modes():
    with pytest.raises(ValueError, match="empty"):
        label_anchor(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="midrow"):
        label_anchor(disk(50, 50, 25, 25, 10), "centroid")


def test_ids_are_red_and_drawn_around_their_anchor():
    h, w = 240, 320
    masks = {3: disk(h, w, 80, 120, 40), 12: disk(h, w, 230, 100, 45)}
    frame = np.zeros((h, w, 3), np.uint8)
    out = draw_ids(frame, masks, P)
    assert not frame.any()  # the input is untouched
    changed = out.any(axis=2)
    assert changed.any()
    assert (out[..., 1][changed] == 0).all() and (out[..., 2][changed] == 0).all()  # pure red on black
    scale = font_scale(h, w, P)
    thickness = font_thickness(scale)
    for instance_id, mask in masks.items():
        ax, ay = label_anchor(mask)
        (tw, th), base = cv2.getTextSize(str(instance_id), FONT, scale, thickness)
        box = np.zeros((h, w), bool)
        box[max(0, ay - th) : ay + th // 2 + base + 2, max(0, ax - tw // 2 - 2) : ax + tw // 2 + 3] = True
        near = changed & box
        assert near.sum() > 20, instance_id
    # Every red pixel belongs to one of the two labels.
    boxes = np.zeros((h, w), bool)
    for mask in masks.values():
        ys, xs = np.nonzero(mask)
        boxes[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    assert not (changed & ~boxes).any()


def test_text_at_the_frame_edge_is_clipped_inside_the_image():
    h, w = 120, 160
    mask = np.zeros((h, w), bool)
    mask[0:6, w - 6 : w] = True  # a tiny object in the top-right corner
    out = draw_ids(np.zeros((h, w, 3), np.uint8), {88: mask}, P)
    ys, xs = np.nonzero(out[..., 0])
    assert ys.size > 0
    (tw, _), _ = cv2.getTextSize("88", FONT, font_scale(h, w, P), font_thickness(font_scale(h, w, P)))
    assert xs.max() - xs.min() >= tw * 0.8  # the whole number is visible, not cut off


def test_official_placement_is_the_text_bottom_left_at_the_anchor_unclipped():
    """mask2marker.py: cv2.putText(frame, id, centre, ...) with the mid-row anchor, nothing else."""
    h, w = 120, 160
    official = replace(P, label_anchor="midrow", label_placement="official")
    mask = disk(h, w, 60, 80, 20)
    anchor = label_anchor(mask, "midrow")
    expected = np.zeros((h, w, 3), np.uint8)
    scale, thickness = font_scale(h, w, P), font_thickness(font_scale(h, w, P))
    cv2.putText(expected, "7", anchor, FONT, scale, (255, 0, 0), thickness, cv2.LINE_AA)
    np.testing.assert_array_equal(draw_ids(np.zeros((h, w, 3), np.uint8), {7: mask}, official), expected)
    assert not np.array_equal(draw_ids(np.zeros((h, w, 3), np.uint8), {7: mask}, P), expected)
    corner = np.zeros((h, w), bool)
    corner[0:6, w - 6 : w] = True  # top-right corner: the official text runs off the image
    out = draw_ids(np.zeros((h, w, 3), np.uint8), {88: corner}, official)
    (tw, _), _ = cv2.getTextSize("88", FONT, scale, thickness)
    xs = np.nonzero(out[..., 0])[1]
    assert xs.size == 0 or xs.max() - xs.min() < tw * 0.8  # cut off at the frame edge


def test_empty_masks_are_skipped_and_wrong_sizes_rejected():
    frame = np.zeros((50, 60, 3), np.uint8)
    assert not draw_ids(frame, {1: np.zeros((50, 60), bool)}, P).any()
    with pytest.raises(ValueError, match="instance 1"):
        draw_ids(frame, {1: np.ones((40, 60), bool)}, P)


def test_font_follows_the_official_scale_rule():
    assert font_scale(336, 336, P) == pytest.approx(20 / 30)
    assert font_scale(360, 640, P) == pytest.approx(1.27, abs=0.01)
    assert font_thickness(font_scale(360, 640, P)) == 2
    assert font_scale(720, 1280, P) == pytest.approx(2.54, abs=0.01)
    assert font_thickness(font_scale(720, 1280, P)) == 5


def test_text_height_scales_with_resolution():
    def text_height(size: int) -> int:
        mask = disk(size, size, size // 2, size // 2, size // 3)
        ys, _ = np.nonzero(draw_ids(np.zeros((size, size, 3), np.uint8), {7: mask}, P)[..., 0] > 0)
        return int(ys.max() - ys.min() + 1)

    small, large = text_height(336), text_height(1344)
    # The code's nominal "20 px" (scale 20/30) draws digits ~15-18 px tall with their stroke.
    assert 12 <= small <= 24
    assert large / small == pytest.approx(4.0, rel=0.2)


def test_write_video_round_trip(tmp_path: Path):
    frames = [np.full((64, 96, 3), (i * 20, 0, 0), np.uint8) for i in range(6)]
    path = tmp_path / "v" / "prompted.mp4"
    assert write_video(path, iter(frames), fps=5.0) == 6
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    decoded = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        decoded.append(f)
    cap.release()
    assert len(decoded) == 6 and decoded[0].shape == (64, 96, 3)
    assert decoded[5][..., 2].mean() > 80 and decoded[5][..., 0].mean() < 30  # RGB red stored as BGR red
    assert [p.name for p in path.parent.iterdir()] == ["prompted.mp4"]


def test_write_video_resizes_to_the_given_size(tmp_path: Path):
    frames = [np.zeros((60, 80, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)]
    path = tmp_path / "s.mp4"
    assert write_video(path, frames, fps=2.0, size=(112, 84)) == 2
    cap = cv2.VideoCapture(str(path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (112, 84)
    cap.release()


def test_write_video_leaves_nothing_behind_on_failure(tmp_path: Path):
    def broken():
        yield np.zeros((32, 32, 3), np.uint8)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        write_video(tmp_path / "x.mp4", broken(), fps=5.0)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "y.mp4", [], fps=5.0)
    assert list(tmp_path.iterdir()) == []


def test_the_sampled_frames_use_the_configured_resize_kernel():
    """``prompt.sampling.resize`` reaches the frames the policy sees (no tracks: the frames as decoded)."""
    from stvg.config import SamplingParams
    from stvg.prompting.render import render_video, resize_frame
    from stvg.prompting.video import VideoMeta

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(4)]

    class Source:
        meta = VideoMeta(fps=2.0, n_frames=4, width=160, height=90)
        frame_indices = (0, 1, 2, 3)

        def read(self, start: int, stop: int) -> list[np.ndarray]:
            return frames[start:stop]

    sampled = {}
    for kernel in ("area", "bicubic"):
        plan, sampled[kernel], _ = render_video(
            Source(), {}, P, SamplingParams(min_pixels=28 * 28, resize=kernel), None, 2.0
        )
        size = (plan["out_width"], plan["out_height"])
        for slot, native in enumerate(plan["frame_indices"]):
            np.testing.assert_array_equal(sampled[kernel][slot], resize_frame(frames[native], size, kernel))
    assert not np.array_equal(sampled["area"], sampled["bicubic"])
