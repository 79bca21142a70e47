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
    by_frame = {int(f): g for f, g in table.groupby("frame")}
    out: list[float] = []
    for inst in visible:
        frames = visible_frames(inst, min_visible_px, min_visible_fraction)
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
        out.append(counts.most_common(1)[0][1] / len(frames) if counts and frames else 0.0)
    return out
