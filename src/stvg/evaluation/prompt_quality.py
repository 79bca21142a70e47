"""Identity coverage: how well the visual prompts keep one ID per ground-truth instance (synthetic GT).

For each GT instance, the share of its *visible* frames on which its dominant ID (the ID matched most
often) is the one whose box matches the instance's visible-part box with IoU >= ``min_iou``. A frame
counts as visible when at least ``min_visible_fraction`` of the instance's largest visible area shows
(and at least ``min_visible_px`` pixels): the GT box is the box of the visible part, and a detection
of a mostly hidden shape cannot reach the IoU match even with perfect identities. 1.0 means one ID
followed the instance over every visible frame; an ID switch or an unmerged fragment lowers it.
Pure numpy/pandas; used by tests/smoke/test_cpu_tracker.py and benchmarks/bench_prompt_quality.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from stvg.geometry import box_iou, mask_to_box


def visible_frames(
    instance: np.ndarray, min_visible_px: int = 60, min_visible_fraction: float = 0.5
) -> list[int]:
    """Frames on which a (T, H, W) bool instance shows enough of itself to be matched by its box."""
    area = instance.reshape(len(instance), -1).sum(axis=1)
    floor = max(min_visible_px, min_visible_fraction * float(area.max(initial=0)))
    return [t for t in range(len(instance)) if area[t] >= floor and area[t] > 0]


def _dominant_id_frames(
    by_frame: dict[int, pd.DataFrame], inst: np.ndarray, frames: list[int], min_iou: float
) -> tuple[list[int | None], int | None]:
    """Per frame the ID whose box best matches the instance's visible-part box (IoU >= ``min_iou``)."""
    winners: list[int | None] = []
    for t in frames:
        g = by_frame.get(t)
        best = None
        if g is not None:
            ious = box_iou(g[["x1", "y1", "x2", "y2"]].to_numpy(), np.asarray(mask_to_box(inst[t])))
            if ious.max() >= min_iou:
                best = int(g.instance_id.to_numpy()[ious.argmax()])
        winners.append(best)
    counts = Counter(w for w in winners if w is not None)
    return winners, (counts.most_common(1)[0][0] if counts else None)


def identity_coverage(
    table: pd.DataFrame,
    visible: np.ndarray,
    *,
    min_iou: float = 0.5,
    min_visible_px: int = 60,
    min_visible_fraction: float = 0.5,
) -> list[float]:
    """Per GT instance of ``visible`` (N, T, H, W): dominant-ID coverage of its visible frames.

    ``table`` is a mask-database table (columns frame, instance_id, x1, y1, x2, y2).
    """
    return [
        1.0 - len(missed) / len(frames) if frames else 0.0
        for frames, missed in _coverage_frames(table, visible, min_iou, min_visible_px, min_visible_fraction)
    ]


def missed_frames(
    table: pd.DataFrame,
    visible: np.ndarray,
    *,
    min_iou: float = 0.5,
    min_visible_px: int = 60,
    min_visible_fraction: float = 0.5,
) -> list[list[int]]:
    """Per GT instance, the visible frames its dominant ID does not hold (what ``identity_coverage`` counts)."""
    return [m for _, m in _coverage_frames(table, visible, min_iou, min_visible_px, min_visible_fraction)]


def _coverage_frames(
    table: pd.DataFrame, visible: np.ndarray, min_iou: float, min_visible_px: int, min_visible_fraction: float
) -> list[tuple[list[int], list[int]]]:
    by_frame = {int(f): g for f, g in table.groupby("frame")}
    out: list[tuple[list[int], list[int]]] = []
    for inst in visible:
        frames = visible_frames(inst, min_visible_px, min_visible_fraction)
        winners, dominant = _dominant_id_frames(by_frame, inst, frames, min_iou)
        out.append(
            (frames, [t for t, w in zip(frames, winners, strict=True) if dominant is None or w != dominant])
        )
    return out


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
