"""The pure promotion gate: margins, tolerances, first model, missing or invalid metrics."""

from __future__ import annotations

import json
import math

import pytest

from stvg.registry_gate import GateError, decide_promotion

CHAMPION = {"m_vIoU": 0.40, "m_tIoU": 0.50, "vIoU@0.3": 0.55, "vIoU@0.5": 0.35}


def _with(**changes: float) -> dict[str, float]:
    metrics = dict(CHAMPION)
    metrics.update({k.replace("_at_", "@"): v for k, v in changes.items()})
    return metrics


def test_first_model_is_promoted_with_every_metric_listed() -> None:
    decision = decide_promotion(CHAMPION, None, "m_vIoU", margin=0.0, tolerance=0.0)
    assert decision.promote
    assert "first model" in decision.reason
    assert decision.comparisons[0].name == "m_vIoU"
    assert {c.name for c in decision.comparisons} == set(CHAMPION)
    assert all(c.champion is None and c.status == "new" for c in decision.comparisons)


@pytest.mark.parametrize(
    ("challenger_primary", "margin", "promote"),
    [
        (0.45, 0.0, True),  # clearly better
        (0.40, 0.0, False),  # equal is not better
        (0.39, 0.0, False),  # worse
        (0.41, 0.01, False),  # exactly the margin is not MORE than the margin (float noise guarded)
        (0.4101, 0.01, True),  # just above the margin
        (0.44, 0.05, False),  # better, but not by the margin
    ],
)
def test_primary_metric_must_beat_champion_by_more_than_margin(
    challenger_primary: float, margin: float, promote: bool
) -> None:
    decision = decide_promotion(_with(m_vIoU=challenger_primary), CHAMPION, "m_vIoU", margin, tolerance=0.0)
    assert decision.promote is promote
    primary = decision.comparisons[0]
    assert primary.name == "m_vIoU"
    assert primary.delta == pytest.approx(challenger_primary - 0.40)
    assert primary.status == ("primary-better" if promote else "primary-not-better")


@pytest.mark.parametrize(
    ("other_value", "tolerance", "promote"),
    [
        (0.50, 0.0, True),  # unchanged
        (0.49, 0.02, True),  # within tolerance
        (0.48, 0.02, True),  # exactly at the tolerance
        (0.47, 0.02, False),  # beyond tolerance
        (0.30, 0.10, False),
    ],
)
def test_other_metrics_may_not_regress_beyond_tolerance(
    other_value: float, tolerance: float, promote: bool
) -> None:
    decision = decide_promotion(_with(m_vIoU=0.5, m_tIoU=other_value), CHAMPION, "m_vIoU", 0.0, tolerance)
    assert decision.promote is promote
    status = {c.name: c.status for c in decision.comparisons}
    assert status["m_tIoU"] == ("ok" if promote else "regressed")
    assert decision.regressions == (() if promote else ("m_tIoU",))
    if not promote:
        assert "m_tIoU" in decision.reason and "regress" in decision.reason


def test_primary_regression_is_judged_by_margin_not_tolerance() -> None:
    decision = decide_promotion(_with(m_vIoU=0.395), CHAMPION, "m_vIoU", 0.0, tolerance=0.02)
    assert not decision.promote
    assert "does not beat" in decision.reason


def test_compare_limits_the_regression_check() -> None:
    champion = CHAMPION | {"n_samples": 100.0}
    challenger = _with(m_vIoU=0.5) | {"n_samples": 8.0}
    assert not decide_promotion(challenger, champion, "m_vIoU", 0.0, 0.02).promote
    decision = decide_promotion(challenger, champion, "m_vIoU", 0.0, 0.02, compare=["m_tIoU", "vIoU@0.5"])
    assert decision.promote
    assert {c.name for c in decision.comparisons} == {"m_vIoU", "m_tIoU", "vIoU@0.5"}


def test_extra_challenger_metrics_do_not_block() -> None:
    decision = decide_promotion(_with(m_vIoU=0.5) | {"new_metric": 0.0}, CHAMPION, "m_vIoU", 0.0, 0.0)
    assert decision.promote
    assert "new_metric" not in {c.name for c in decision.comparisons}


@pytest.mark.parametrize(
    ("challenger", "champion", "message"),
    [
        ({"m_tIoU": 0.5}, CHAMPION, "challenger has no primary metric 'm_vIoU'"),
        ({"m_tIoU": 0.5}, None, "challenger has no primary metric 'm_vIoU'"),
        (CHAMPION, {"m_tIoU": 0.5}, "champion has no primary metric 'm_vIoU'"),
        ({"m_vIoU": 0.9}, CHAMPION, "challenger lacks metric(s) ['m_tIoU', 'vIoU@0.3', 'vIoU@0.5']"),
        (CHAMPION | {"m_tIoU": math.nan}, CHAMPION, "challenger metric 'm_tIoU' must be a finite number"),
        (CHAMPION, CHAMPION | {"m_vIoU": "0.4"}, "champion metric 'm_vIoU' must be a finite number"),
    ],
)
def test_missing_or_invalid_metrics_raise_a_clear_error(challenger, champion, message) -> None:
    with pytest.raises(GateError) as err:
        decide_promotion(challenger, champion, "m_vIoU", 0.0, 0.0)
    assert message in str(err.value)


def test_compared_metric_missing_on_champion_names_the_fix() -> None:
    with pytest.raises(GateError, match="champion lacks metric.*registry.gate_metrics"):
        challenger = CHAMPION | {"strict_m_vIoU": 0.3}
        decide_promotion(challenger, CHAMPION, "m_vIoU", 0.0, 0.0, compare=["m_tIoU", "strict_m_vIoU"])


def test_negative_margin_or_tolerance_is_rejected() -> None:
    with pytest.raises(GateError, match="margin and tolerance"):
        decide_promotion(CHAMPION, CHAMPION, "m_vIoU", -0.1, 0.0)


def test_decision_renders_table_markdown_and_json() -> None:
    decision = decide_promotion(_with(m_vIoU=0.5, m_tIoU=0.4), CHAMPION, "m_vIoU", 0.0, 0.02)
    table = decision.table().splitlines()
    assert table[0].split() == ["metric", "challenger", "champion", "delta", "status"]
    assert any(line.split()[:5] == ["m_tIoU", "0.4000", "0.5000", "-0.1000", "regressed"] for line in table)
    assert "| m_vIoU | 0.5000 | 0.4000 | +0.1000 | primary-better |" in decision.markdown()
    payload = json.loads(json.dumps(decision.to_dict()))
    assert payload["promote"] is False
    assert payload["regressions"] == ["m_tIoU"]
    assert payload["comparisons"][0]["name"] == "m_vIoU"


def test_by_default_baselines_and_counts_are_not_compared() -> None:
    evidence = {
        "oracle/m_vIoU": 0.9,
        "random/m_vIoU": 0.2,
        "random/expected/m_tIoU": 0.15,
        "n": 8.0,
        "failures/unknown_id": 3.0,
        "repaired/largest_frames": 40.0,
    }
    champion = CHAMPION | evidence
    # a new benchmark draw lowers the baselines, and the challenger fails less: neither is a regression
    fewer_failures = {k: 0.0 for k in evidence} | {"n": 10.0}
    decision = decide_promotion(_with(m_vIoU=0.5) | fewer_failures, champion, "m_vIoU", 0.0, 0.02)
    assert decision.promote, decision.reason
    assert {c.name for c in decision.comparisons} == set(CHAMPION)
    # a policy score under a group prefix is still compared
    decision = decide_promotion(
        _with(m_vIoU=0.5) | {"repaired/m_vIoU": 0.1}, CHAMPION | {"repaired/m_vIoU": 0.4}, "m_vIoU", 0.0, 0.02
    )
    assert decision.regressions == ("repaired/m_vIoU",)
    # listed explicitly, a count is compared as asked
    decision = decide_promotion(
        _with(m_vIoU=0.5) | fewer_failures, champion, "m_vIoU", 0.0, 0.02, compare=["failures/unknown_id"]
    )
    assert decision.regressions == ("failures/unknown_id",)
