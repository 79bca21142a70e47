"""Rewards as TRL callables: values, gating, hostile completions, conversational completions."""

from __future__ import annotations

import pytest

from stvg.training.rewards import build_reward_funcs, format_reward, object_reward, tiou_reward

GOOD = "<think>t</think><answer>Target ID: 3, Time range: 10.00 to 20.00</answer>"
UNFORMATTED = "<answer>Target ID: 3, Time range: 10.00 to 20.00</answer>"


def test_tiou_reward_uses_seconds_iou() -> None:
    texts = [
        "<answer>Target ID: 1, Time range: 5.00 to 15.00</answer>",
        GOOD,
        "<answer>Target ID: 1, Time range: 30 to 40</answer>",
    ]
    assert tiou_reward(texts, start_s=[10.0] * 3, end_s=[20.0] * 3) == pytest.approx([1 / 3, 1.0, 0.0])


@pytest.mark.parametrize(
    "text",
    [
        "no tags at all",
        "<answer>Target ID: 3, Time range: -5 to 20</answer>",
        "<answer>Target ID: 3, Time range: 20 to 10</answer>",
        "<answer>Target ID: 3, Time range: 10 to 20e0</answer>",
        "<answer>Target ID: 3, Time range: 10 to 99999999999</answer>",
    ],
)
def test_hostile_times_score_zero_under_the_lenient_parser(text: str) -> None:
    assert tiou_reward([text], start_s=[10.0], end_s=[20.0], dialect="lenient") == [0.0]


def test_the_official_parser_reads_numbers_up_to_where_its_pattern_stops() -> None:
    texts = [
        "<answer>Target ID: 3, Time range: 10 to 20e0</answer>",  # reads 20
        "<answer>Target ID: 3, Time range: 10.00 to 20.00.</answer>",  # sentence-final period
        "<answer>Target ID: 3, Time range: 20 to 10</answer>",  # reversed: tIoU 0, but an answer
    ]
    assert tiou_reward(texts, start_s=[10.0] * 3, end_s=[20.0] * 3) == [1.0, 1.0, 0.0]
    assert object_reward(texts, target_id=[3, 3, 3]) == [1.0, 1.0, 1.0]
    assert object_reward(texts, target_id=[3, 3, 3], dialect="lenient") == [0.0, 1.0, 0.0]


def test_object_reward_matches_id_only() -> None:
    texts = [
        GOOD,
        "<answer>Target ID: 4, Time range: 10 to 20</answer>",
        "<answer>Target ID: 3</answer>",
        "nothing",
    ]
    # An ID that is not in the video can never equal the ground truth ID: it scores 0 like any wrong ID.
    texts.append("<answer>Target ID: 57, Time range: 10 to 20</answer>")
    # official: an ID without a time range fails the whole answer (both task rewards 0)
    assert object_reward(texts, target_id=[3, 3, 3, 3, 3]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    loose = object_reward(texts, target_id=[3, 3, 3, 3, 3], id_needs_time=False)
    assert loose == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_build_reward_funcs_passes_the_parser_and_id_rule() -> None:
    only_id = "<think>t</think><answer>Target ID: 3</answer>"
    cols = {"start_s": [10.0], "end_s": [20.0], "target_id": [3]}
    official, _ = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0})
    loose, _ = build_reward_funcs({"object": 1.0}, id_needs_time=False)
    assert [f([only_id], **cols) for f in official] == [[1.0], [0.0], [0.0]]
    assert loose[2]([only_id], **cols) == [1.0]
    shouting = "<THINK>t</THINK><ANSWER>Target ID: 3, Time range: 10 to 20</ANSWER>"
    lenient, _ = build_reward_funcs({"format": 1.0}, gate_on_format=True, dialect="lenient")
    assert [f([shouting], **cols) for f in official] == [[0.0], [0.0], [0.0]]
    assert [f([shouting], **cols) for f in lenient] == [[1.0], [1.0], [1.0]]


def test_format_reward_and_conversational_completions() -> None:
    conv = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": UNFORMATTED}]]
    assert format_reward(conv) == [1.0, 0.0]
    assert tiou_reward(conv, start_s=[10.0, 10.0], end_s=[20.0, 20.0]) == [1.0, 1.0]


def test_gate_on_format_zeroes_task_rewards_of_malformed_completions() -> None:
    cols = {"start_s": [10.0, 10.0], "end_s": [20.0, 20.0], "target_id": [3, 3]}
    plain, _ = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0}, gate_on_format=False)
    gated, weights = build_reward_funcs({"format": 1.0, "tiou": 2.0, "object": 1.0}, gate_on_format=True)
    assert weights == [1.0, 2.0, 1.0]
    assert [f([GOOD, UNFORMATTED], **cols) for f in plain] == [[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert [f([GOOD, UNFORMATTED], **cols) for f in gated] == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    assert [f.__name__ for f in gated] == ["format_reward", "tiou_reward", "object_reward"]


def test_parse_failure_reasons_are_logged_through_trl_hooks() -> None:
    extra: dict[str, list] = {}
    metrics: dict[str, float] = {}
    tiou_reward(
        [GOOD, "no tags"],
        start_s=[10.0, 10.0],
        end_s=[20.0, 20.0],
        log_extra=lambda col, vals: extra.setdefault(col, []).extend(vals),
        log_metric=lambda name, v: metrics.__setitem__(name, v),
    )
    assert extra["parse_reason"] == ["ok", "no <answer> block"]
    assert metrics["parse_rate"] == 0.5


def test_unknown_reward_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown rewards"):
        build_reward_funcs({"length": 1.0})
