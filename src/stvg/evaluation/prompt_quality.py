"""Identity coverage: how well the visual prompts keep one ID per ground-truth instance (synthetic GT).

Per GT instance, its *identity recall* as in IDF1 (Ristani et al., 2016): GT instances and predicted
IDs are matched one to one over the whole video so that the number of frames on which a matched ID's
box agrees with its instance's visible-part box (IoU >= ``min_iou``) is largest (Hungarian
assignment); an instance's coverage is the share of its counted frames its matched ID holds. 1.0 means
one ID followed the instance over every counted frame; an ID switch, an unmerged fragment, or one ID
claimed by two instances lowers it. Another ID's box overlapping the instance better on some frame
(a box around two touching shapes) does not take the frame from the matched ID.

Counted frames: those on which at least ``min_visible_fraction`` of the instance's largest visible area
shows (and at least ``min_visible_px`` pixels) — the GT box is the visible part's, and a detection of
a mostly hidden shape cannot match it — and, when the video's frames are given, at least
``min_outline_fraction`` of the instance's outline shows in the pixels (``outline_visibility``). The
second rule is the visibility filter of MOT benchmarks measured in the image rather than in the
geometry: a flat shape on, or under, a shape of its own colour has no edge there, and no detector or
tracker can place it. Without frames every geometrically visible frame counts (the strict figure).
Pure numpy/pandas/scipy; used by tests/smoke/test_synthetic_cpu_backend.py and benchmarks/bench_prompt_quality.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from stvg.geometry import box_iou, mask_to_box


def visible_frames(
    instance: np.ndarray, min_visible_px: int = 60, min_visible_fraction: float = 0.5
) -> list[int]:
    """Frames on which a (T, H, W) bool instance shows enough of itself to be matched by its box."""
    area = instance.reshape(len(instance), -1).sum(axis=1)
    floor = max(min_visible_px, min_visible_fraction * float(area.max(initial=0)))
    return [t for t in range(len(instance)) if area[t] >= floor and area[t] > 0]


def counted_frames(
    instance: np.ndarray,
    frames_rgb: np.ndarray | Sequence[np.ndarray] | None = None,
    *,
    min_visible_px: int = 60,
    min_visible_fraction: float = 0.5,
    min_outline_fraction: float = 0.5,
) -> list[int]:
    """The frames coverage counts for one instance: visible enough and, with ``frames_rgb``, discernible."""
    frames = visible_frames(instance, min_visible_px, min_visible_fraction)
    if frames_rgb is None:
        return frames
    return [t for t in frames if outline_visibility(frames_rgb[t], instance[t]) >= min_outline_fraction]


def _matching_frames(
    by_frame: dict[int, pd.DataFrame], inst: np.ndarray, frames: list[int], min_iou: float
) -> dict[int, set[int]]:
    """Per predicted ID, the counted frames on which its box matches the instance (IoU >= ``min_iou``)."""
    out: dict[int, set[int]] = {}
    for t in frames:
        g = by_frame.get(t)
        if g is None:
            continue
        ious = box_iou(g[["x1", "y1", "x2", "y2"]].to_numpy(), np.asarray(mask_to_box(inst[t])))
        for tid in g.instance_id.to_numpy()[ious >= min_iou]:
            out.setdefault(int(tid), set()).add(t)
    return out


def coverage_frames(
    table: pd.DataFrame,
    visible: np.ndarray,
    frames_rgb: np.ndarray | Sequence[np.ndarray] | None = None,
    *,
    min_iou: float = 0.5,
    min_visible_px: int = 60,
    min_visible_fraction: float = 0.5,
    min_outline_fraction: float = 0.5,
) -> list[tuple[list[int], list[int]]]:
    """Per GT instance of ``visible`` (N, T, H, W): (its counted frames, those its matched ID does not
    hold), instances and IDs matched one to one. ``table`` is a mask-database table (columns frame,
    instance_id, x1, y1, x2, y2); ``frames_rgb`` (T, H, W, 3), the video's lossless frames, turns on
    the outline rule (see the module docstring)."""
    by_frame = {int(f): g for f, g in table.groupby("frame")}
    counted = [
        counted_frames(
            inst,
            frames_rgb,
            min_visible_px=min_visible_px,
            min_visible_fraction=min_visible_fraction,
            min_outline_fraction=min_outline_fraction,
        )
        for inst in visible
    ]
    matches = [_matching_frames(by_frame, inst, f, min_iou) for inst, f in zip(visible, counted, strict=True)]
    ids = sorted({tid for m in matches for tid in m})
    held: list[set[int]] = [set() for _ in visible]
    if ids and len(visible):
        gain = np.array([[len(m.get(tid, ())) for tid in ids] for m in matches], dtype=np.int64)
        for k, j in zip(*linear_sum_assignment(gain, maximize=True), strict=True):
            held[k] = matches[k].get(ids[j], set())
    return [(f, [t for t in f if t not in h]) for f, h in zip(counted, held, strict=True)]


def coverage_of(frames_missed: list[tuple[list[int], list[int]]]) -> list[float]:
    """Per instance, the share of its counted frames its matched ID holds (0 with no counted frame)."""
    return [1.0 - len(missed) / len(frames) if frames else 0.0 for frames, missed in frames_missed]


def identity_coverage(
    table: pd.DataFrame,
    visible: np.ndarray,
    frames_rgb: np.ndarray | Sequence[np.ndarray] | None = None,
    **thresholds: float,
) -> list[float]:
    """Per GT instance, the share of its counted frames its matched ID holds (``coverage_frames``'s
    arguments)."""
    return coverage_of(coverage_frames(table, visible, frames_rgb, **thresholds))


def missed_frames(
    table: pd.DataFrame,
    visible: np.ndarray,
    frames_rgb: np.ndarray | Sequence[np.ndarray] | None = None,
    **thresholds: float,
) -> list[list[int]]:
    """Per GT instance, the counted frames its matched ID does not hold (``coverage_frames``'s arguments)."""
    return [m for _, m in coverage_frames(table, visible, frames_rgb, **thresholds)]


def outline_visibility(frame_rgb: np.ndarray, mask: np.ndarray, tol: int = 30) -> float:
    """Share of a mask's outline that shows in the image (1.0: all of it; 0.0: none).

    An outline pixel is a mask pixel with a 4-neighbour outside the mask (inside the image); it shows
    when one such neighbour differs in colour (sum of absolute RGB differences > ``tol``). Where a
    shape lies on, or under, a shape of its own flat colour, the outline between them does not show:
    no detector or tracker can tell the two apart there. A diagnostic for the frames coverage misses.
    """
    img = frame_rgb.astype(np.int32)
    m = mask.astype(bool)
    outline = np.zeros_like(m)
    shows = np.zeros_like(m)
    h, w = m.shape
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        edge = m[ys, xs] & ~m[yd, xd]
        differs = np.abs(img[ys, xs] - img[yd, xd]).sum(axis=-1) > tol
        outline[ys, xs] |= edge
        shows[ys, xs] |= edge & differs
    n = int(outline.sum())
    return float(shows.sum()) / n if n else 0.0
