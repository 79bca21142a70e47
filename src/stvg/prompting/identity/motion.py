"""Where a track's box is expected on another frame: constant-velocity and windowed motion fits."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import numpy as np

from stvg.prompting.identity.observation import Box, Observation


def extrapolate_box(frames: Mapping[int, Observation], target: int, *, backward: bool = False) -> Box:
    """Constant-velocity guess of a track's box at ``target`` from its last (or first) two frames."""
    keys = sorted(frames)
    if backward:
        a, b = (keys[1], keys[0]) if len(keys) > 1 else (keys[0], keys[0])
    else:
        a, b = (keys[-2], keys[-1]) if len(keys) > 1 else (keys[-1], keys[-1])
    bb = np.asarray(frames[b].box, dtype=np.float64)
    if a == b:
        return tuple(bb.tolist())  # type: ignore[return-value]
    velocity = (bb - np.asarray(frames[a].box, dtype=np.float64)) / (b - a)
    return tuple((bb + velocity * (target - b)).tolist())  # type: ignore[return-value]


def motion_box(
    frames: Mapping[int, Observation], target: int, *, backward: bool = False, window: int = 4
) -> Box:
    """Box expected at ``target`` from the track's last (or first) ``window + 1`` observations.

    Sturdier than ``extrapolate_box`` at the ends of fragments, where a shape is usually entering,
    leaving or being covered: the centre's velocity is a least-squares fit over the window (one
    shrinking box does not swing it) and the size is the window's median width and height.
    """
    keys = sorted(frames)
    keys = keys[: window + 1] if backward else keys[-(window + 1) :]
    t = np.asarray(keys, dtype=np.float64)
    boxes = np.asarray([frames[k].box for k in keys], dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.median(boxes[:, 2:] - boxes[:, :2], axis=0)
    centre = centres.mean(0)
    if len(keys) > 1:
        tc = t - t.mean()
        velocity = (tc[:, None] * (centres - centre)).sum(0) / (tc**2).sum()
        centre = centre + velocity * (target - t.mean())
    return tuple(np.concatenate([centre - size / 2, centre + size / 2]).tolist())  # type: ignore[return-value]


def predict_box(
    frames: Mapping[int, Observation], target: int, *, backward: bool = False, window: int = 1
) -> Box:
    """``motion_box`` over ``window`` observations, or ``extrapolate_box`` when ``window`` is 1."""
    if window > 1:
        return motion_box(frames, target, backward=backward, window=window)
    return extrapolate_box(frames, target, backward=backward)


def predict_before(
    frames: Mapping[int, Observation], keys: Sequence[int], t: int, since: int = -(10**12)
) -> Box | None:
    """Box expected at ``t`` from the track's last two observations in ``[since, t)`` (sorted ``keys``)."""
    i = bisect.bisect_left(keys, t)
    prev = [k for k in keys[max(0, i - 2) : i] if k >= since]
    if not prev:
        return None
    return extrapolate_box({k: frames[k] for k in prev}, t)


def center_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between two boxes' centres in units of the first box's side (geometric mean of w, h)."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    side = max(1e-6, float(np.sqrt(max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]))))
    return float(np.linalg.norm(ca - cb)) / side


def box_containment(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller box's area: 1 when one box lies inside the other."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / small if small > 0 else 0.0
