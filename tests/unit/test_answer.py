"""Answer parser and format check: hand cases and hostile completions, in both dialects.

The exhaustive comparison with the official parser is tests/protocols/test_stvg_r1_protocol.py.
"""

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
    p = parse_answer(text, "lenient")
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
    p = parse_answer(text, "lenient")
    assert not p.ok
    assert reason_part in p.reason
    assert math.isnan(p.start_s) and math.isnan(p.end_s)


def test_non_text_input_never_raises() -> None:
    assert not parse_answer(None).ok  # type: ignore[arg-type]
    assert not parse_answer(None, "lenient").ok  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="official"):
        parse_answer("x", "loose")  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", ["official", "lenient"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>Target ID: 2, Time range: 5.00 to 11.00.</answer>", (2, 5.0, 11.0)),
        ("<answer>Target ID: 2. Time range: 5.00 to 11.00</answer>", (2, 5.0, 11.0)),
        ("<answer>Target ID: 2, Time range: 5. to 11.</answer>", (2, 5.0, 11.0)),
    ],
)
def test_a_sentence_final_period_parses_in_both_dialects(
    text: str, expected: tuple[int, float, float], dialect: str
) -> None:
    """The official regexes stop at the number; the lenient parser used to reject these (tIoU 0)."""
    p = parse_answer(text, dialect)  # type: ignore[arg-type]
    assert p.ok, p.reason
    assert (p.target_id, p.start_s, p.end_s) == expected


@pytest.mark.parametrize(
    ("text", "ok", "expected"),
    [
        ("<answer>Target ID: 2.5, Time range: 1 to 4</answer>", True, (2, 1.0, 4.0)),  # \d+ stops at '.'
        ("<answer>Target ID: 2, Time range: 9.00 to 4.00</answer>", True, (2, 9.0, 4.0)),  # reversed
        ("<answer>Target ID: 2, Time range: -1.00 to 4.00</answer>", False, None),  # no sign in \d
        ("<ANSWER>Target ID: 2, Time range: 1 to 4</ANSWER>", False, None),  # tags are case-sensitive
        ("<answer>target id: 2, TIME RANGE: 1 and 4</answer>", True, (2, 1.0, 4.0)),
        ("<answer>Target ID: [2], Time range: [1 to 4]</answer>", False, None),  # no brackets
        ("<answer>Target ID : 2, Time range: 1 to 4</answer>", False, None),  # no space before ':'
        ("<answer>Target ID: 2, Time range: 1s to 4s</answer>", False, None),  # no unit
        ("<answer>Target ID: 2</answer>", False, None),
    ],
)
def test_official_dialect_is_the_official_regexes(text: str, ok: bool, expected: tuple | None) -> None:
    p = parse_answer(text)
    assert p.ok is ok, p.reason
    if ok:
        assert (p.target_id, p.start_s, p.end_s) == expected
    else:
        assert math.isnan(p.start_s)


def test_an_id_without_a_time_range_keeps_the_id_for_the_optional_id_reward() -> None:
    for dialect in ("official", "lenient"):
        p = parse_answer("<answer>Target ID: 2</answer>", dialect)  # type: ignore[arg-type]
        assert not p.ok and p.target_id == 2 and "Time range" in p.reason


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
    assert has_valid_format(text, "lenient") is ok


def test_official_format_tags_are_case_sensitive() -> None:
    text = "<Think>a</Think><Answer>b</Answer>"
    assert not has_valid_format(text) and has_valid_format(text, "lenient")


def test_query_is_lowercased_without_trailing_period_inside_quotes() -> None:
    assert normalize_query("  The Man in Grey waves.  ") == "the man in grey waves"
    assert '"the man in grey waves"' in question_text("The Man in Grey waves.")
    # grpo_video.py: strip, lower, then drop ONE trailing period (nothing else)
    assert normalize_query("He waves ..") == "he waves ."
    assert normalize_query("He waves . ") == "he waves "
    assert '"The Man waves."' in question_text("The Man waves.", normalize=False)  # evaluate.py


def test_the_official_template_is_verbatim_and_the_default_of_a_model_without_one(tmp_path) -> None:
    import hashlib

    from stvg.training.template import OFFICIAL_QUESTION_TEMPLATE, load_template, save_template

    # SHA-256 of the official QUESTION_TEMPLATE / GROUND_TEMPLATE text (STVG-R1 grpo_trainer_video.py,
    # evaluate.py), with its [EVENT] slot
    official = OFFICIAL_QUESTION_TEMPLATE.replace("{query}", "[EVENT]").encode()
    assert hashlib.sha256(official).hexdigest() == OFFICIAL_SHA256
    assert load_template(tmp_path) == OFFICIAL_QUESTION_TEMPLATE  # a folder without prompt_template.json
    assert load_template("Qwen/Qwen2.5-VL-7B-Instruct") == OFFICIAL_QUESTION_TEMPLATE  # a hub id
    save_template(tmp_path)
    assert load_template(tmp_path) != OFFICIAL_QUESTION_TEMPLATE  # a saved template wins


OFFICIAL_SHA256 = "2f9d7b8cc4281de92b9c6101e69793e2dceec73bbfecdcc64d09394d1d99f963"
