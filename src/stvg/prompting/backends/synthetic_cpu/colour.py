"""The stand-in's appearance: a colour histogram of an instance's mask, for telling instances apart.

Motion and box overlap cannot tell two shapes apart where they cross; appearance can, whenever they
differ in colour. BoT-SORT-style trackers take a ReID embedding for that; without a ReID network the
CPU backend uses the oldest embedding in tracking: the colour histogram of the object's pixels (HSV,
hue x saturation x value bins), eroded by one pixel so compression-blurred edges do not mix in the
background. The feature is the square root of the normalised histogram (unit L2 norm), so the cosine
similarity of two features is their Bhattacharyya coefficient and ``1 - cosine`` is a distance in
[0, 1]: ~0 for the same colours, ~1 for disjoint ones. Pure numpy + OpenCV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stvg.prompting.identity import Observation

HUE_BINS, SAT_BINS, VAL_BINS = 16, 4, 4
FEATURE_DIM = HUE_BINS * SAT_BINS * VAL_BINS
END_WINDOW = 8  # observations whose medoid colour stands for a track's first or last frames


def hsv_bins(image_rgb: np.ndarray) -> np.ndarray:
    """Histogram bin (0..FEATURE_DIM-1) of every pixel of an RGB image, (H, W) int."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2HSV).astype(np.int32)
    h = np.minimum(hsv[..., 0] * HUE_BINS // 180, HUE_BINS - 1)
    s = hsv[..., 1] * SAT_BINS // 256
    v = hsv[..., 2] * VAL_BINS // 256
    return (h * SAT_BINS + s) * VAL_BINS + v


def colour_feature(image_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Unit-norm sqrt colour histogram (``FEATURE_DIM``,) of the masked pixels; None for an empty mask."""
    import cv2

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    m = np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.uint8)
    inner = cv2.erode(m, np.ones((3, 3), np.uint8))
    if inner.sum() >= 8:
        m = inner
    bins = hsv_bins(image_rgb[y1:y2, x1:x2])[m.astype(bool)]
    if bins.size == 0:
        return None
    hist = np.bincount(bins, minlength=FEATURE_DIM).astype(np.float64)
    return np.sqrt(hist / hist.sum()).astype(np.float32)


def back_project(image_rgb: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """How typical each pixel's colour is of ``feature``: (H, W) float in 0..1 (1 = the commonest bin).

    Histogram back-projection (as OpenCV's calcBackProject / CamShift), on the same bins as
    ``colour_feature``.
    """
    hist = feature.astype(np.float64) ** 2
    peak = hist.max()
    table = (hist / peak if peak > 0 else hist).astype(np.float32)
    return table[hsv_bins(image_rgb)]


def appearance_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """``1 - Bhattacharyya coefficient`` of two features in [0, 1]; 0 when either is unknown.

    >>> f = np.array([1.0, 0.0], dtype=np.float32)
    >>> appearance_distance(f, f), appearance_distance(f, np.array([0.0, 1.0]))
    (0.0, 1.0)
    """
    if a is None or b is None:
        return 0.0
    return float(np.clip(1.0 - float(np.dot(a, b)), 0.0, 1.0))


def medoid_feature(features: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The known feature closest (in summed cosine similarity) to all the others: robust to a few outliers."""
    known = [f for f in features if f is not None]
    if not known:
        return None
    stack = np.stack(known)
    return known[int(np.argmax((stack @ stack.T).sum(axis=1)))]


def end_appearance(
    frames: Mapping[int, Observation], *, first: bool, window: int = END_WINDOW
) -> np.ndarray | None:
    """Typical appearance of a track's first (or last) ``window`` observed (not gap-filled) frames.

    The medoid, not the mean: the ends of a fragment are where its object goes behind, or comes out
    from behind, another one, and those frames' masks mix in the other object's colours.
    """
    keys = [k for k in sorted(frames) if not frames[k].filled and frames[k].feature is not None]
    keys = keys[:window] if first else keys[-window:]
    return medoid_feature([frames[k].feature for k in keys])


@dataclass(frozen=True)
class ColourSimilarity:
    """``identity.Similarity`` by colour: fragments whose end colours differ more than ``gate`` are two
    objects (a shape that went behind another is not the one that came out)."""

    gate: float

    def signature(self, frames: Mapping[int, Observation], *, first: bool) -> np.ndarray | None:
        """The medoid colour feature of the track's first (or last) observed frames."""
        return end_appearance(frames, first=first)

    def compatible(self, tail: np.ndarray | None, head: np.ndarray | None) -> bool:
        """Whether the two ends may be one object (unknown colours never veto)."""
        return appearance_distance(tail, head) <= self.gate
