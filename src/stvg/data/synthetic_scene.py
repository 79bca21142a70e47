"""Scene simulation for the synthetic STVG benchmark: coloured shapes moving in timed motion segments.

A scene is a list of instances in z-order (later ones are drawn on top). Each instance follows a
sequence of motion segments (stand still, or move left/right/up/down at a constant speed), so every
event ("stops", "starts moving left") has an exact frame. Instances may enter mid-video from an edge
and may leave through an edge; the sampler biases attributes towards same-shape and same-colour
distractors so that appearance alone rarely identifies the target.

Frames are 0-based. A segment covers frames ``start .. end - 1``: the instance's centre moves by
``velocity`` between consecutive frames of the segment, and the next segment starts from the position
at ``end``. Pure numpy; the random stream is a ``numpy.random.Generator`` passed in by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stvg.config import SyntheticParams

SHAPE_CLASSES: tuple[str, ...] = ("square", "circle", "triangle")
# RGB; none of them is close to the light-grey backgrounds, and red is one colour among five.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "green": (35, 150, 60),
    "blue": (40, 75, 205),
    "yellow": (235, 195, 30),
    "purple": (130, 50, 170),
}
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
STILL = "still"
# Entering from a side means moving away from it.
ENTER_DIRECTION: dict[str, str] = {"left": "right", "right": "left", "top": "down", "bottom": "up"}

SegmentKind = Literal["enter", "move", "leave"]


@dataclass(frozen=True)
class Segment:
    """One constant-velocity stretch of an instance's motion, frames ``start .. end - 1``."""

    action: str  # "still" or a key of DIRECTIONS
    start: int
    end: int  # exclusive
    velocity: tuple[float, float]  # pixels per frame (dx, dy)
    kind: SegmentKind = "move"

    @property
    def moving(self) -> bool:
        return self.action != STILL


@dataclass(frozen=True)
class Instance:
    """One shape: appearance, size, start position and its motion segments (contiguous in time)."""

    shape: str
    color: str
    size: int  # side of the bounding square, pixels
    start_center: tuple[float, float]  # (cx, cy) at segments[0].start, pixels
    segments: tuple[Segment, ...]
    enter_side: str = ""  # "left"/"right"/"top"/"bottom" when it enters mid-video, else ""

    @property
    def appear_frame(self) -> int:
        return self.segments[0].start

    @property
    def leaves(self) -> bool:
        """Heads out through an edge at the end (fully gone when end_frame < the video's length)."""
        return self.segments[-1].kind == "leave"

    @property
    def end_frame(self) -> int:
        """One past the last frame on which the instance exists (left the frame, or video end)."""
        return self.segments[-1].end

    @property
    def appearance(self) -> tuple[str, str]:
        return (self.color, self.shape)


@dataclass(frozen=True)
class Scene:
    """A whole synthetic video before rendering; instances are in z-order (last drawn on top)."""

    width: int
    height: int
    n_frames: int
    fps: float
    instances: tuple[Instance, ...]


def instance_centers(inst: Instance, n_frames: int) -> np.ndarray:
    """Centre of the instance on every frame, NaN where it does not exist. -> (n_frames, 2) float."""
    out = np.full((n_frames, 2), np.nan)
    cx, cy = inst.start_center
    for seg in inst.segments:
        frames = np.arange(seg.start, min(seg.end, n_frames))
        steps = frames - seg.start
        out[frames, 0] = cx + seg.velocity[0] * steps
        out[frames, 1] = cy + seg.velocity[1] * steps
        cx += seg.velocity[0] * (seg.end - seg.start)
        cy += seg.velocity[1] * (seg.end - seg.start)
    return out


# ----------------------------------------------------------------------------------------------- sampling


def n_frames_of(p: SyntheticParams) -> int:
    """Frames per video: round(fps * duration)."""
    return round(p.fps * p.duration_s)


def sample_scene(rng: np.random.Generator, p: SyntheticParams) -> Scene:
    """Draw one scene from the benchmark distribution described by ``p``."""
    n_frames = n_frames_of(p)
    n = int(rng.integers(p.min_instances, p.max_instances + 1))
    appearances = _sample_appearances(rng, n)
    instances = []
    for i, (color, shape) in enumerate(appearances):
        size = int(rng.integers(p.shape_size[0], p.shape_size[1] + 1))
        instances.append(_sample_instance(rng, p, n_frames, shape, color, size, may_enter=i > 0))
    return Scene(width=p.width, height=p.height, n_frames=n_frames, fps=p.fps, instances=tuple(instances))


def _sample_appearances(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """Colours and shapes with deliberate distractors: same shape, same colour, or identical."""
    colors, shapes = list(COLORS), list(SHAPE_CLASSES)
    out = [(colors[rng.integers(len(colors))], shapes[rng.integers(len(shapes))])]
    for _ in range(n - 1):
        base_color, base_shape = out[rng.integers(len(out))]
        u = rng.random()
        if u < 0.35:  # same shape, different colour
            color = _other(rng, colors, base_color)
            out.append((color, base_shape))
        elif u < 0.7:  # same colour, different shape
            out.append((base_color, _other(rng, shapes, base_shape)))
        elif u < 0.85:  # identical appearance: only the event tells them apart
            out.append((base_color, base_shape))
        else:
            out.append((colors[rng.integers(len(colors))], shapes[rng.integers(len(shapes))]))
    return out


def _other(rng: np.random.Generator, options: list[str], not_this: str) -> str:
    rest = [o for o in options if o != not_this]
    return rest[rng.integers(len(rest))]


def _sample_instance(
    rng: np.random.Generator,
    p: SyntheticParams,
    n_frames: int,
    shape: str,
    color: str,
    size: int,
    *,
    may_enter: bool,
) -> Instance:
    w, h = p.width, p.height
    half = size / 2
    margin = 2.0
    seg_min = max(2, round(p.segment_s[0] * p.fps))
    seg_max = max(seg_min, round(p.segment_s[1] * p.fps))
    speed = (p.speed_px_s[0] / p.fps, p.speed_px_s[1] / p.fps)  # pixels per frame
    lo_x, hi_x = margin + half, w - margin - half  # centre range keeping the shape fully inside
    lo_y, hi_y = margin + half, h - margin - half

    segments: list[Segment] = []
    enter_side = ""
    t = 0
    if may_enter and rng.random() < p.p_enter:
        t = int(rng.integers(int(0.15 * n_frames), max(int(0.15 * n_frames) + 1, int(0.6 * n_frames))))
        enter_side = ("left", "right", "top", "bottom")[rng.integers(4)]
        v = float(rng.uniform(*speed))
        depth = max(v, size / 4)  # visible depth on the first frame
        along = rng.uniform(lo_y, hi_y) if enter_side in ("left", "right") else rng.uniform(lo_x, hi_x)
        start = {
            "left": (depth - half, along),
            "right": (w - depth + half, along),
            "top": (along, depth - half),
            "bottom": (along, h - depth + half),
        }[enter_side]
        action = ENTER_DIRECTION[enter_side]
        dx, dy = DIRECTIONS[action]
        # Frames until fully inside, then a little more; never past the opposite side.
        dist_in = -_room(start, -dx, -dy, lo_x, hi_x, lo_y, hi_y)
        dist_max = _room(start, dx, dy, lo_x, hi_x, lo_y, hi_y)
        d_in = math.ceil(dist_in / v)
        d = d_in + int(rng.integers(0, seg_min + 1))
        d = min(d, int(dist_max // v), n_frames - t)
        segments.append(Segment(action, t, t + d, (dx * v, dy * v), "enter"))
        center = (start[0] + dx * v * d, start[1] + dy * v * d)
        start_center = start
        t += d
    else:
        center = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
        start_center = center

    leave_at = n_frames + 1
    if rng.random() < p.p_leave:
        leave_at = int(rng.integers(int(0.4 * n_frames), int(0.6 * n_frames) + 1))

    prev = segments[-1].action if segments else ""
    while t < n_frames:
        if t >= leave_at:
            segments.append(_leave_segment(center, half, w, h, speed[1], t, n_frames, prev))
            break
        duration = int(rng.integers(seg_min, seg_max + 1))
        choices = [a for a in (STILL, *DIRECTIONS) if a != prev]
        if prev != STILL and rng.random() < 0.35:
            action = STILL
        else:
            action = ""
            for cand in rng.permutation([c for c in choices if c != STILL]):
                v = float(rng.uniform(*speed))
                dx, dy = DIRECTIONS[str(cand)]
                room = _room(center, dx, dy, lo_x, hi_x, lo_y, hi_y)
                if room / v >= seg_min:
                    action = str(cand)
                    duration = min(duration, int(room // v))
                    break
            if not action:
                action = STILL if prev != STILL else ""
            if not action:  # boxed in right after standing still: stand still longer
                last = segments[-1]
                segments[-1] = Segment(STILL, last.start, min(n_frames, last.end + duration), (0.0, 0.0))
                t = segments[-1].end
                continue
        duration = min(duration, n_frames - t)
        if action == STILL:
            vel = (0.0, 0.0)
        else:
            dx, dy = DIRECTIONS[action]
            vel = (dx * v, dy * v)
        segments.append(Segment(action, t, t + duration, vel))
        center = (center[0] + vel[0] * duration, center[1] + vel[1] * duration)
        prev = action
        t += duration
    return Instance(shape, color, size, start_center, tuple(segments), enter_side)


def _room(
    center: tuple[float, float], dx: int, dy: int, lo_x: float, hi_x: float, lo_y: float, hi_y: float
) -> float:
    """How far the centre can travel in a direction while the shape stays fully inside."""
    cx, cy = center
    if dx:
        return (hi_x - cx) if dx > 0 else (cx - lo_x)
    return (hi_y - cy) if dy > 0 else (cy - lo_y)


def _leave_segment(
    center: tuple[float, float], half: float, w: int, h: int, v: float, t: int, n_frames: int, prev: str
) -> Segment:
    """Move towards the nearest edge at top speed until fully outside (cut at the video's end).

    The previous segment's direction is excluded, so that leaving is a visible change of motion.
    """
    cx, cy = center
    exits = {"left": cx + half, "right": w - cx + half, "up": cy + half, "down": h - cy + half}
    exits.pop(prev, None)
    action = min(exits, key=lambda a: (exits[a], a))
    d = math.ceil(exits[action] / v) + 1
    dx, dy = DIRECTIONS[action]
    return Segment(action, t, min(t + d, n_frames), (dx * v, dy * v), "leave")
