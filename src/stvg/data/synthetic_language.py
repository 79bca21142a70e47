"""Referring expressions for synthetic scenes, and the checker that rejects ambiguous ones.

An expression names the target by appearance ("the red square") and an event that fixes the time
span ("while it moves left", "that starts moving left after the blue circle stops"). Its meaning is
computed against the scene: ``groundings`` lists every (instance, segment) pair the sentence could
describe under every reading of the referenced object. A sentence is usable only when exactly one
pair matches and the referenced object (if any) is itself unambiguous; the matched segment is the GT
time span and its instance the GT target.

Like HC-STVG there is one sentence per video. Sentences are lowercase without a final full stop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stvg.data.synthetic_scene import DIRECTIONS, STILL, Scene, Segment

ExpressionKind = Literal["while_moving", "while_still", "entering", "starts_after_stop", "moves_before_start"]
# Relational sentences need another object's event to place the span; they are preferred when drawing.
KIND_WEIGHTS: dict[str, float] = {
    "while_moving": 1.0,
    "while_still": 1.0,
    "entering": 1.0,
    "starts_after_stop": 2.0,
    "moves_before_start": 2.0,
}


@dataclass(frozen=True)
class Expression:
    """A structured referring expression; ``text`` renders it."""

    kind: ExpressionKind
    color: str
    shape: str
    direction: str = ""  # for while_moving / starts_after_stop / moves_before_start
    side: str = ""  # for entering
    ref_color: str = ""  # the referenced object, for the relational kinds
    ref_shape: str = ""

    @property
    def text(self) -> str:
        target = f"the {self.color} {self.shape}"
        ref = f"the {self.ref_color} {self.ref_shape}"
        return {
            "while_moving": f"{target} while it moves {self.direction}",
            "while_still": f"{target} while it stands still",
            "entering": f"{target} entering from the {self.side}",
            "starts_after_stop": f"{target} that starts moving {self.direction} after {ref} stops",
            "moves_before_start": f"{target} moving {self.direction} before {ref} starts moving",
        }[self.kind]


@dataclass(frozen=True)
class Grounding:
    """What an expression denotes in a scene."""

    candidates: tuple[tuple[int, int], ...]  # (instance index, segment index) pairs it can describe
    reference_readings: int  # (instance, event) readings of the referenced object; 1 for non-relational

    @property
    def unique(self) -> bool:
        return len(self.candidates) == 1 and self.reference_readings == 1


def stop_frames(scene: Scene, index: int) -> list[int]:
    """Frames where instance ``index`` stops: a still segment right after a moving one."""
    segs = scene.instances[index].segments
    return [s.start for prev, s in itertools.pairwise(segs) if prev.moving and not s.moving]


def start_frames(scene: Scene, index: int) -> list[int]:
    """Frames where instance ``index`` starts moving: a moving segment right after a still one."""
    segs = scene.instances[index].segments
    return [s.start for prev, s in itertools.pairwise(segs) if not prev.moving and s.moving]


def ground(expr: Expression, scene: Scene) -> Grounding:
    """Every (instance, segment) the expression can describe, over all readings of its reference."""
    targets = [i for i, inst in enumerate(scene.instances) if inst.appearance == (expr.color, expr.shape)]
    if expr.kind in ("while_moving", "while_still", "entering"):
        found = []
        for i in targets:
            for k, seg in enumerate(scene.instances[i].segments):
                if _describes(expr, seg, scene.instances[i].enter_side):
                    found.append((i, k))
        return Grounding(tuple(found), 1)

    refs = [
        i for i, inst in enumerate(scene.instances) if inst.appearance == (expr.ref_color, expr.ref_shape)
    ]
    readings = 0
    found_set: set[tuple[int, int]] = set()
    for r in refs:
        events = stop_frames(scene, r) if expr.kind == "starts_after_stop" else start_frames(scene, r)
        readings += len(events)
        for when in events:
            for i in targets:
                if i == r:
                    continue
                for k, seg in enumerate(scene.instances[i].segments):
                    after = expr.kind == "starts_after_stop" and seg.start > when  # strictly after
                    before = expr.kind == "moves_before_start" and seg.end <= when
                    if seg.action == expr.direction and (after or before):
                        found_set.add((i, k))
    return Grounding(tuple(sorted(found_set)), readings)


def _describes(expr: Expression, seg: Segment, enter_side: str) -> bool:
    """Whether a non-relational expression's event is this segment."""
    if expr.kind == "while_moving":
        return seg.action == expr.direction
    if expr.kind == "while_still":
        return seg.action == STILL
    return seg.kind == "enter" and enter_side == expr.side


def candidate_expressions(scene: Scene) -> list[Expression]:
    """Every expression the templates can form about this scene (unchecked), in a fixed order."""
    out: list[Expression] = []
    appearances = sorted({inst.appearance for inst in scene.instances})
    for color, shape in appearances:
        out.append(Expression("while_still", color, shape))
        for d in DIRECTIONS:
            out.append(Expression("while_moving", color, shape, direction=d))
        for side in ("left", "right", "top", "bottom"):
            out.append(Expression("entering", color, shape, side=side))
        for ref_color, ref_shape in appearances:
            if (ref_color, ref_shape) == (color, shape):
                continue
            for d in DIRECTIONS:
                for kind in ("starts_after_stop", "moves_before_start"):
                    out.append(
                        Expression(kind, color, shape, direction=d, ref_color=ref_color, ref_shape=ref_shape)
                    )
    return out


@dataclass(frozen=True)
class GroundedExpression:
    """A checked expression with its target instance and GT span (0-based frames, inclusive)."""

    expression: Expression
    target: int
    segment: int
    first_frame: int
    last_frame: int


def usable_expressions(
    scene: Scene, visible_area: np.ndarray, *, min_visible_px: int, min_span_frames: int
) -> list[GroundedExpression]:
    """Unambiguous expressions whose target shows >= min_visible_px pixels on every span frame.

    ``visible_area``: (N, T) visible pixel counts per instance and frame.
    """
    out = []
    for expr in candidate_expressions(scene):
        g = ground(expr, scene)
        if not g.unique:
            continue
        i, k = g.candidates[0]
        seg = scene.instances[i].segments[k]
        first, last = seg.start, min(seg.end, scene.n_frames) - 1
        if last - first + 1 < min_span_frames:
            continue
        if (visible_area[i, first : last + 1] < min_visible_px).any():
            continue
        out.append(GroundedExpression(expr, i, k, first, last))
    return out


def choose_expression(
    rng: np.random.Generator, scene: Scene, usable: list[GroundedExpression]
) -> GroundedExpression:
    """Draw one usable expression, preferring relational ones and targets with look-alike distractors."""
    weights = []
    for g in usable:
        w = KIND_WEIGHTS[g.expression.kind]
        target = scene.instances[g.target]
        others = [inst for j, inst in enumerate(scene.instances) if j != g.target]
        if any(o.appearance == target.appearance for o in others):
            w *= 3.0
        elif any(o.shape == target.shape or o.color == target.color for o in others):
            w *= 1.5
        weights.append(w)
    probs = np.asarray(weights) / np.sum(weights)
    return usable[int(rng.choice(len(usable), p=probs))]
