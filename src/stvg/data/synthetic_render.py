"""Rasterise synthetic scenes: a light textured background, solid shapes in z-order, exact visible masks.

Shapes are drawn without anti-aliasing at integer positions, so each instance's visible mask (its own
pixels minus those covered by instances drawn later, clipped to the frame) is exactly the set of pixels
painted in its colour: the GT boxes are the tight boxes of these masks. Backgrounds are grey with a
slight green/blue tint and low-amplitude smooth texture, never red-dominant (the prompting stage draws
red numeric IDs on top of the frames).
"""

from __future__ import annotations

import cv2
import numpy as np

from stvg.data.synthetic_scene import COLORS, Scene, instance_centers


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A light grey, lightly textured background. -> (H, W, 3) uint8 RGB."""
    level = float(rng.uniform(170, 215))
    tint = np.array([-float(rng.uniform(0, 10)), float(rng.uniform(-4, 6)), float(rng.uniform(-4, 8))])
    coarse = rng.normal(0.0, 1.0, size=(max(2, height // 16), max(2, width // 16))).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)  # (H, W) float32
    amplitude = float(rng.uniform(2, 7))
    img = level + tint[None, None, :] + amplitude * texture[:, :, None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def shape_patch(
    shape: str, cx: float, cy: float, size: int, height: int, width: int
) -> tuple[np.ndarray, slice, slice]:
    """One shape centred at (cx, cy), clipped to the frame, as a patch and where it lies in the frame.

    -> (patch (h, w) bool, rows, cols) with ``frame[rows, cols]`` the patch's pixels; an empty patch
    when the shape is entirely outside the frame.
    """
    x1 = int(np.floor(cx - size / 2 + 0.5))
    y1 = int(np.floor(cy - size / 2 + 0.5))
    canvas = np.zeros((size, size), dtype=np.uint8)
    last = size - 1
    if shape == "square":
        canvas[:] = 1
    elif shape == "circle":
        r = last // 2
        cv2.circle(canvas, (r, r), r, 1, thickness=-1, lineType=cv2.LINE_8)
    elif shape == "triangle":
        pts = np.array([[0, last], [last, last], [last // 2, 0]], dtype=np.int32)
        cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    r0, r1 = max(y1, 0), min(y1 + size, height)
    c0, c1 = max(x1, 0), min(x1 + size, width)
    if r0 >= r1 or c0 >= c1:
        return np.zeros((0, 0), dtype=bool), slice(0, 0), slice(0, 0)
    patch = canvas[r0 - y1 : r1 - y1, c0 - x1 : c1 - x1].astype(bool)
    return patch, slice(r0, r1), slice(c0, c1)


def shape_mask(shape: str, cx: float, cy: float, size: int, height: int, width: int) -> np.ndarray:
    """Pixels of one shape centred at (cx, cy), clipped to the frame. -> (H, W) bool."""
    mask = np.zeros((height, width), dtype=bool)
    patch, rows, cols = shape_patch(shape, cx, cy, size, height, width)
    mask[rows, cols] = patch
    return mask


def render_frame(
    scene: Scene, frame: int, background: np.ndarray, centers: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One frame and every instance's visible mask on it.

    -> image (H, W, 3) uint8 RGB, visible masks (N, H, W) bool (empty where absent or fully hidden).
    ``centers`` (from ``instance_centers``) may be passed to avoid recomputing them per frame.
    """
    image, visible, _ = _render(scene, frame, background, centers)
    return image, visible


def _render(
    scene: Scene, frame: int, background: np.ndarray, centers: list[np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """render_frame plus which instances are partly covered by a later one. occluded: (N,) bool."""
    h, w = scene.height, scene.width
    if centers is None:
        centers = [instance_centers(inst, scene.n_frames) for inst in scene.instances]
    image = background.copy()
    visible = np.zeros((len(scene.instances), h, w), dtype=bool)
    occluded = np.zeros(len(scene.instances), dtype=bool)
    for i, inst in enumerate(scene.instances):
        cx, cy = centers[i][frame]
        if np.isnan(cx):
            continue
        patch, rows, cols = shape_patch(inst.shape, cx, cy, inst.size, h, w)
        if not patch.any():
            continue
        for j in range(i):  # later instances cover earlier ones
            below = visible[j, rows, cols]
            covered = below & patch
            if covered.any():
                occluded[j] = True
                below &= ~covered  # a view: updates visible[j]
        visible[i, rows, cols] = patch
        image[rows, cols][patch] = COLORS[inst.color]
    return image, visible, occluded


def render_video(scene: Scene, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames, visible masks and occlusion flags.

    -> frames (T, H, W, 3) uint8 RGB, visible (N, T, H, W) bool, occluded (N, T) bool.
    """
    centers = [instance_centers(inst, scene.n_frames) for inst in scene.instances]
    frames = np.empty((scene.n_frames, scene.height, scene.width, 3), dtype=np.uint8)
    visible = np.empty((len(scene.instances), scene.n_frames, scene.height, scene.width), dtype=bool)
    occluded = np.zeros((len(scene.instances), scene.n_frames), dtype=bool)
    for t in range(scene.n_frames):
        frames[t], visible[:, t], occluded[:, t] = _render(scene, t, background, centers)
    return frames, visible, occluded
