"""The predictions gate accepts sane predictions and names the offending row of each violation."""

from __future__ import annotations

from stvg.checks.predictions import check_predictions


def _rows() -> list[dict]:
    return [
        {
            "policy": "policy",
            "sample_id": "a",
            "parse_ok": True,
            "tiou": 0.5,
            "viou": 0.4,
            "viou_repaired": 0.5,
            "target_id": 1,
            "start_s": 1.0,
            "end_s": 2.0,
        },
        {
            "policy": "policy",
            "sample_id": "b",
            "parse_ok": False,
            "tiou": 0.0,
            "viou": 0.0,
            "viou_repaired": 0.0,
            "target_id": None,
            "start_s": None,
            "end_s": None,
        },
        {
            "policy": "oracle",
            "sample_id": "a",
            "parse_ok": True,
            "tiou": 1.0,
            "viou": 0.9,
            "viou_repaired": 0.9,
            "target_id": 2,
            "start_s": 1.0,
            "end_s": 2.0,
        },
    ]


def test_good_predictions_pass() -> None:
    assert check_predictions(_rows(), {"policy": 0.5, "oracle": 1.0}, min_parse_rate=0.5).success


def test_out_of_range_score_names_the_row() -> None:
    rows = _rows()
    rows[0]["viou"] = 1.5
    report = check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0)
    assert not report.success
    assert "policy/a" in report.message()


def test_strict_above_repaired_is_rejected() -> None:
    rows = _rows()
    rows[0]["viou"], rows[0]["viou_repaired"] = 0.6, 0.5
    assert not check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0).success


def test_parse_rate_bound_applies_to_the_trained_policy_only() -> None:
    rows = _rows()
    assert not check_predictions(rows, {"policy": 0.5, "oracle": 0.0}, min_parse_rate=0.9).success
    assert check_predictions(rows, {"policy": 0.95, "oracle": 0.0}, min_parse_rate=0.9).success


def test_duplicate_answers_are_rejected() -> None:
    rows = [*_rows(), dict(_rows()[0])]
    assert not check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0).success


def test_repaired_below_strict_is_allowed_only_when_the_protocol_says_so() -> None:
    rows = _rows()
    rows[0] = {**rows[0], "viou": 0.6, "viou_repaired": 0.5}  # st-align: a fallback box widened the union
    assert not check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0).success
    assert check_predictions(
        rows, {"policy": 0.5}, min_parse_rate=0.0, repaired_at_least_strict=False
    ).success


def test_a_reversed_span_is_the_policys_mistake_unless_it_scored() -> None:
    rows = _rows()
    rows[0] = {**rows[0], "start_s": 3.0, "end_s": 2.0, "tiou": 0.0, "viou": 0.0, "viou_repaired": 0.0}
    assert check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0).success  # scored 0: fine
    rows[0] = {**rows[0], "tiou": 0.4}  # a reversed span that earned a score: the scorer is broken
    report = check_predictions(rows, {"policy": 0.5}, min_parse_rate=0.0)
    assert not report.success and "policy/a" in report.message()


def test_a_low_parse_rate_is_reported_with_the_measured_rate_and_the_bound() -> None:
    report = check_predictions(_rows(), {"policy": 0.125}, min_parse_rate=0.5)
    assert not report.success
    message = report.message()
    assert "measured 0.125" in message and "at least 0.5" in message and "evaluate.min_parse_rate" in message
