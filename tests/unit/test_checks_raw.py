"""The raw-annotation gate accepts a good table and names the sample behind each kind of violation."""

from __future__ import annotations

import dataclasses

import pytest

from stvg.checks.core import CheckFailed
from stvg.checks.raw import annotation_table, check_invalid_share, check_raw
from stvg.records import Sample


def _sample(i: int, **changes: object) -> Sample:
    base = Sample(
        sample_id=f"s{i}",
        dataset="hcstvg-v2",
        video=f"video_parts/0/v{i}.mp4",
        video_id=f"v{i}",
        query="the man in the grey suit who sits down",
        fps=10.0,
        n_frames=200,
        width=320,
        height=240,
        gt_span_s=(2.0, 5.0),
        gt_span_frames=(20, 49),
        gt_boxes={f: (10.0, 20.0, 100.0, 200.0) for f in range(20, 50)},
    )
    return dataclasses.replace(base, **changes)


GOOD = [_sample(i) for i in range(4)]

# case -> (changes to an otherwise good sample, the expectation that must catch it, its column)
VIOLATIONS = {
    "duplicate id": ({"sample_id": "s0"}, "ExpectColumnValuesToBeUnique", "sample_id"),
    "empty query": ({"query": "   "}, "ExpectColumnValuesToMatchRegex", "query"),
    "numeric query": ({"query": 42}, "ExpectColumnValuesToBeOfType", "query"),
    "end before start": (
        {"gt_span_s": (5.0, 2.0)},
        "ExpectColumnPairValuesAToBeGreaterThanB",
        "end_s, start_s",
    ),
    "end after duration": (
        {"gt_span_s": (2.0, 25.0)},
        "ExpectColumnPairValuesAToBeGreaterThanB",
        "duration_s, end_s",
    ),
    "negative start": ({"gt_span_s": (-1.0, 2.0)}, "ExpectColumnValuesToBeBetween", "start_s"),
    "missing span": ({"gt_span_s": None}, "ExpectColumnValuesToNotBeNull", "start_s"),
    "box outside frame": (
        {"gt_boxes": {20: (10.0, 20.0, 400.0, 200.0)}},
        "ExpectColumnValuesToBeInSet",
        "boxes_inside",
    ),
    "degenerate box": (
        {"gt_boxes": {20: (100.0, 20.0, 10.0, 200.0)}},
        "ExpectColumnValuesToBeInSet",
        "boxes_valid",
    ),
    "box after last frame": (
        {"gt_boxes": {250: (10.0, 20.0, 100.0, 200.0)}},
        "ExpectColumnValuesToBeInSet",
        "boxes_in_time",
    ),
    "zero fps": ({"fps": 0.0}, "ExpectColumnValuesToBeBetween", "fps"),
    "unknown dataset": ({"dataset": "kinetics"}, "ExpectColumnValuesToBeInSet", "dataset"),
    "text frame count": ({"n_frames": "200"}, "ExpectColumnValuesToBeInTypeList", "n_frames"),
}


def _bad_id(case: str) -> str:
    return "s0" if case == "duplicate id" else "bad-" + case.replace(" ", "-")


def test_good_samples_pass():
    report = check_raw(GOOD)
    assert report.success, report.message()
    assert report.n_rows == 4 and report.failures == []
    assert report.statistics["unsuccessful_expectations"] == 0


@pytest.fixture(scope="module")
def one_violation_per_sample():
    """One validation of a table where each bad sample carries exactly one violation (GX is slow)."""
    bad = [
        _sample(100 + i, **{"sample_id": _bad_id(case), **VIOLATIONS[case][0]})
        for i, case in enumerate(VIOLATIONS)
    ]
    return check_raw([*GOOD, *bad])


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_each_violation_is_named_with_its_sample(one_violation_per_sample, case):
    _, expectation, column = VIOLATIONS[case]
    report = one_violation_per_sample
    assert not report.success
    blamed = [f for f in report.failures if f["expectation"] == expectation and f["column"] == column]
    assert blamed, report.message()
    assert any(_bad_id(case) in f["examples"] for f in blamed), report.message()
    assert _bad_id(case) in report.message()


def test_good_samples_are_never_blamed(one_violation_per_sample):
    blamed = {e for f in one_violation_per_sample.failures for e in f["examples"]}
    assert blamed.isdisjoint({"s1", "s2", "s3"})


@pytest.mark.parametrize("case", ["end before start", "box outside frame"])
def test_a_single_violation_alone_stops_the_gate(case):
    changes, expectation, _ = VIOLATIONS[case]
    report = check_raw([*GOOD, _sample(9, **changes)])
    assert [f["expectation"] for f in report.failures] == [expectation]
    with pytest.raises(CheckFailed, match=expectation) as excinfo:
        report.raise_on_failure()
    assert "s9" in str(excinfo.value)


def test_query_only_samples_pass_without_gt_requirement():
    queries = [_sample(i, gt_span_s=None, gt_span_frames=None, gt_boxes={}) for i in range(3)]
    assert not check_raw(queries).success
    assert check_raw(queries, require_gt=False).success


def test_no_samples_fails_the_row_count_expectation():
    report = check_raw([])
    assert not report.success
    assert "ExpectTableRowCountToBeBetween" in report.message()


def test_annotation_table_box_flags():
    table = annotation_table([_sample(0), _sample(1, gt_boxes={0: (0.0, 0.0, 321.0, 241.0)})])
    assert table["boxes_inside"].tolist() == [True, True]  # 1 px overhang is rounding, tolerated
    assert table["n_boxes"].tolist() == [30, 1]
    assert table.loc[0, "first_frame"] == 20 and table.loc[0, "last_frame"] == 49


def _invalid(n: int, *, protocol: bool = False) -> list:
    from stvg.data.errors import InvalidSample

    return [InvalidSample("anno.json", f"bad{i}", "st_frame is not a number", protocol) for i in range(n)]


def test_invalid_share_above_the_cap_fails_naming_the_skipped_samples():
    report = check_invalid_share(1, _invalid(2), 0.05)
    assert not report.success
    (failure,) = report.failures
    assert sorted(failure["examples"]) == [
        "bad0 (st_frame is not a number)",
        "bad1 (st_frame is not a number)",
    ]
    assert "data.max_invalid_fraction" in report.message() and "2 of 3" in report.message()


def test_invalid_share_within_the_cap_passes():
    assert check_invalid_share(39, _invalid(1), 0.05).success  # 1 of 40 = 0.025
    assert not check_invalid_share(39, _invalid(1), 0.0).success  # a zero cap tolerates none


def test_protocol_drops_are_not_counted_as_invalid():
    assert check_invalid_share(1, _invalid(5, protocol=True), 0.05).success
