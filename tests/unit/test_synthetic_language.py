"""The expression checker on hand-built scenes: ambiguous sentences are rejected, time disambiguates."""

from __future__ import annotations

import numpy as np

from stvg.data.synthetic_language import Expression, ground, usable_expressions
from stvg.data.synthetic_scene import Instance, Scene, Segment

N = 60


def _still(start: int, end: int) -> Segment:
    return Segment("still", start, end, (0.0, 0.0))


def _left(start: int, end: int) -> Segment:
    return Segment("left", start, end, (-2.0, 0.0))


def _inst(color: str, shape: str, *segments: Segment, x: float = 200.0) -> Instance:
    return Instance(shape, color, 30, (x, 100.0), segments)


def _scene(*instances: Instance) -> Scene:
    return Scene(width=320, height=240, n_frames=N, fps=10.0, instances=instances)


TWO_RED_SQUARES_LEFT = _scene(
    _inst("red", "square", _left(0, 20), _still(20, N)),
    _inst("red", "square", _still(0, 30), _left(30, 50), _still(50, N), x=300.0),
    _inst("blue", "circle", _left(0, 25), _still(25, N)),
)


def test_same_appearance_and_same_event_is_ambiguous() -> None:
    g = ground(Expression("while_moving", "red", "square", direction="left"), TWO_RED_SQUARES_LEFT)
    assert not g.unique
    assert g.candidates == ((0, 0), (1, 1))


def test_a_reference_event_disambiguates_in_time() -> None:
    expr = Expression(
        "starts_after_stop", "red", "square", direction="left", ref_color="blue", ref_shape="circle"
    )
    assert expr.text == "the red square that starts moving left after the blue circle stops"
    g = ground(expr, TWO_RED_SQUARES_LEFT)
    assert g.unique and g.candidates == ((1, 1),)  # only the second square starts after frame 25
    before = Expression("while_moving", "blue", "circle", direction="left")
    assert ground(before, TWO_RED_SQUARES_LEFT).unique


def test_an_ambiguous_reference_is_rejected() -> None:
    scene = _scene(
        _inst("red", "square", _still(0, 30), _left(30, N)),
        _inst("blue", "circle", _left(0, 10), _still(10, N)),
        _inst("blue", "circle", _left(0, 20), _still(20, N), x=100.0),
    )
    expr = Expression(
        "starts_after_stop", "red", "square", direction="left", ref_color="blue", ref_shape="circle"
    )
    g = ground(expr, scene)
    assert g.candidates == ((0, 1),) and g.reference_readings == 2
    assert not g.unique


def test_usable_expressions_need_a_visible_target_and_a_unique_reading() -> None:
    area = np.full((3, N), 500)
    texts = {
        u.expression.text
        for u in usable_expressions(TWO_RED_SQUARES_LEFT, area, min_visible_px=16, min_span_frames=5)
    }
    assert "the red square while it moves left" not in texts
    assert "the red square that starts moving left after the blue circle stops" in texts
    area[1, 40] = 3  # the second square is almost hidden during its left move
    texts = {
        u.expression.text
        for u in usable_expressions(TWO_RED_SQUARES_LEFT, area, min_visible_px=16, min_span_frames=5)
    }
    assert "the red square that starts moving left after the blue circle stops" not in texts
