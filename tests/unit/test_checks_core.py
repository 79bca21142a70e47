"""The gate framework: specs become GX expectations; failures come back with reasons and row ids."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stvg.checks.core import CheckFailed, Expect, run_suite

SUITE = [
    Expect(
        "ExpectColumnValuesToBeBetween",
        {"column": "score", "min_value": 0, "max_value": 1},
        "scores are probabilities",
    ),
    Expect("ExpectColumnValuesToBeUnique", {"column": "id"}, "one row per id"),
]


def _table(scores: list[float], ids: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"id": ids or [f"r{i}" for i in range(len(scores))], "score": scores})


def test_passing_suite_reports_statistics():
    report = run_suite("scores", _table([0.1, 0.5, 0.9]), SUITE, id_column="id")
    assert report.success and report.failures == []
    assert report.statistics["evaluated_expectations"] == 2
    assert report.raise_on_failure() is report
    assert "passed" in report.message()


def test_failure_lists_expectation_reason_and_ids_in_suite_order():
    report = run_suite("scores", _table([0.1, 1.5, -2.0], ids=["a", "b", "b"]), SUITE, id_column="id")
    assert not report.success
    assert [f["expectation"] for f in report.failures] == [s.kind for s in SUITE]
    between = report.failures[0]
    assert between["column"] == "score" and between["why"] == "scores are probabilities"
    assert between["unexpected_count"] == 2 and between["examples"] == ["b"]
    assert report.failures[1]["examples"] == ["b"]
    json.loads(report.to_json())  # JSON-ready for the MLflow artifact
    with pytest.raises(CheckFailed, match="scores are probabilities") as excinfo:
        report.raise_on_failure()
    assert excinfo.value.report is report


def test_without_id_column_offending_values_are_examples():
    report = run_suite("scores", _table([0.1, 7.0]), SUITE[:1])
    assert report.failures[0]["examples"] == [7.0]


def test_examples_are_capped_at_ten():
    report = run_suite("scores", _table([5.0] * 25), SUITE[:1], id_column="id")
    assert report.failures[0]["unexpected_count"] == 25
    assert len(report.failures[0]["examples"]) == 10


def test_missing_column_is_a_failure_with_the_error():
    spec = [Expect("ExpectColumnValuesToNotBeNull", {"column": "vote_share"}, "labels carry a vote share")]
    report = run_suite("labels", _table([0.1]), spec, id_column="id")
    assert not report.success
    assert "vote_share" in report.failures[0]["error"]


def test_unknown_expectation_and_bad_kwargs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown expectation 'ExpectMagic'"):
        run_suite("x", _table([0.1]), [Expect("ExpectMagic", {}, "?")])
    with pytest.raises(ValueError, match="invalid arguments for ExpectColumnValuesToBeBetween"):
        run_suite("x", _table([0.1]), [Expect("ExpectColumnValuesToBeBetween", {"colum": "score"}, "?")])
    with pytest.raises(ValueError, match="id_column 'nope'"):
        run_suite("x", _table([0.1]), SUITE, id_column="nope")


def test_merged_report_names_the_failing_table():
    from stvg.checks.core import merge_reports

    ok = run_suite("raw_train", _table([0.1]), SUITE, id_column="id")
    bad = run_suite("raw_test", _table([3.0], ids=["t9"]), SUITE, id_column="id")
    merged = merge_reports("raw", [ok, bad])
    assert not merged.success and merged.n_rows == 2
    assert merged.failures[0]["suite"] == "raw_test"
    assert "[raw_test] ExpectColumnValuesToBeBetween" in merged.message() and "t9" in merged.message()
    assert merge_reports("raw", [ok]).success
