"""Answer parser and format check: hand cases and hostile completions."""

from __future__ import annotations

import math

import pytest

from stvg.training.answer import has_valid_format, parse_answer
from stvg.training.template import format_answer, normalize_query, question_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>x</think><answer>Target ID: 2, Time range: 1.50 to 4.00</answer>", (2, 1.5, 4.0)),
        ("<ANSWER>target id:7 , time RANGE : 0 and 3.25</ANSWER>", (7, 0.0, 3.25)),
        ("<answer>\n  Target ID: [3],\n Time range: [2.00s to 5.50s]\n</answer>", (3, 2.0, 5.5)),
        (
            "<answer>Target ID: 1, Time range: 1 to 2</answer> then <answer>Target ID: 4, Time range: 3 to 9</answer>",
            (4, 3.0, 9.0),
        ),
        (format_answer(12, 12.54, 17.83, think="t"), (12, 12.54, 17.83)),
    ],
)
def test_parses_last_answer_block_tolerantly(text: str, expected: tuple[int, float, float]) -> None:
    p = parse_answer(text)
    assert p.ok, p.reason
    assert (p.target_id, p.start_s, p.end_s) == expected


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("Target ID: 2, Time range: 1 to 4", "no <answer>"),
        ("<answer>Time range: 1 to 4</answer>", "Target ID"),
        ("<answer>Target ID: 2.5, Time range: 1 to 4</answer>", "not an integer"),
        ("<answer>Target ID: two, Time range: 1 to 4</answer>", "Target ID"),
        ("<answer>Target ID: 2, Time range: -1.00 to 4.00</answer>", "negative"),
        ("<answer>Target ID: 2, Time range: 9.00 to 4.00</answer>", "reversed"),
        ("<answer>Target ID: 2, Time range: 1 to 99999999999999999999</answer>", "beyond"),
        ("<answer>Target ID: 99999999, Time range: 1 to 2</answer>", "out of range"),
        ("<answer>Target ID: 2</answer>", "Time range"),
        ("<answer>Target ID: 2, Time range: 1 to 4</answer><answer>garbage</answer>", "Target ID"),
        ("", "no <answer>"),
    ],
)
def test_hostile_completions_fail_with_a_reason(text: str, reason_part: str) -> None:
    p = parse_answer(text)
    assert not p.ok
    assert reason_part in p.reason
    assert math.isnan(p.start_s) and math.isnan(p.end_s)


def test_non_text_input_never_raises() -> None:
    assert not parse_answer(None).ok  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<think>a</think>\n\n<answer>b</answer>", True),
        ("  <think>a\nb</think><answer>b</answer>  ", True),
        ("<answer>b</answer>", False),
        ("<think>a</think><answer>b</answer> trailing", False),
        ("prefix <think>a</think><answer>b</answer>", False),
        ("<think>a</think> text <answer>b</answer>", False),
    ],
)
def test_format_is_a_full_match(text: str, ok: bool) -> None:
    assert has_valid_format(text) is ok


def test_query_is_lowercased_without_trailing_period_inside_quotes() -> None:
    assert normalize_query("  The Man in Grey waves.  ") == "the man in grey waves"
    assert '"the man in grey waves"' in question_text("The Man in Grey waves.")
