"""The predictions gate: every benchmark sample answered by every policy, scores in range, parse rate bound.

The parse-rate bound is ``evaluate.min_parse_rate``: 0.5 for the embedded default's tiny policy (its
format warm-up makes it answer in the format) and high at paper scale, where a collapse of the format
(a broken template, a truncated ``max_new_tokens``) must stop the promotion. Wrong answers are not
the gate's business (they score 0); scores that contradict the answer are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite

POLICY = "policy"  # the trained policy's name in predictions.jsonl (baselines: oracle, random)
PREDICTION_COLUMNS = (
    "policy",
    "sample_id",
    "parse_ok",
    "tiou",
    "viou",
    "viou_repaired",
    "target_id",
    "start_s",
    "end_s",
)


def prediction_table(records: Sequence[Mapping[str, Any]], parse_rates: Mapping[str, float]) -> pd.DataFrame:
    """One row per (policy, sample) with the policy's parse rate as a column."""
    df = pd.DataFrame(
        [{c: r.get(c) for c in PREDICTION_COLUMNS} for r in records], columns=list(PREDICTION_COLUMNS)
    )
    # the bound is on the trained policy; a baseline's empty answer marks an unlabelled sample, not a format failure
    df["parse_rate"] = [float(parse_rates.get(str(p), 0.0)) if p == POLICY else 1.0 for p in df["policy"]]
    # a parsed answer with an unusable span (missing, reversed, negative) is the policy's mistake, not
    # the pipeline's: it must be scored 0 (the metrics count it as a failure); a non-zero score fails.
    # A zero-length span is usable: it still touches one frame, which the frame-level vIoU may score.
    df["bad_span_scores_zero"] = [
        (not ok) or (s is not None and e is not None and 0 <= s <= e) or (t == 0 and v == 0 and vr == 0)
        for ok, s, e, t, v, vr in zip(
            df["parse_ok"],
            df["start_s"],
            df["end_s"],
            df["tiou"],
            df["viou"],
            df["viou_repaired"],
            strict=True,
        )
    ]
    df["key"] = df["policy"].astype(str) + "/" + df["sample_id"].astype(str)
    return df


def prediction_expectations(min_parse_rate: float, repaired_at_least_strict: bool = True) -> list[Expect]:
    """The predictions suite.

    ``repaired_at_least_strict``: the fallbacks only add boxes where the answered ID is absent, so the
    repaired vIoU cannot fall below the strict one — except under ST-Align, whose union counts every
    frame with a predicted box, so a fallback box on a frame without GT can lower it.
    """
    pairs = [
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "viou_repaired", "column_B": "viou", "or_equal": True},
            "repaired vIoU >= strict vIoU",
        )
    ]
    return [
        # every benchmark sample is answered once per policy: a silent skip would inflate the means
        Expect(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["policy", "sample_id"]},
            "one answer per sample",
        ),
        *[
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": c, "min_value": 0, "max_value": 1},
                f"`{c}` is a fraction in [0, 1]",
            )
            for c in ("tiou", "viou", "viou_repaired")
        ],
        *(pairs if repaired_at_least_strict else []),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "bad_span_scores_zero", "value_set": [True]},
            "an answer whose span is reversed or negative scores 0",
        ),
        # one value per table (the policy's rate): the report shows it beside the bound
        Expect(
            "ExpectColumnMinToBeBetween",
            {"column": "parse_rate", "min_value": min_parse_rate, "max_value": 1},
            f"the policy parses at least {min_parse_rate:g} of its answers (evaluate.min_parse_rate)",
        ),
        Expect(
            "ExpectTableRowCountToBeBetween",
            {"min_value": 1},
            "there is something to evaluate",
        ),
    ]


def check_predictions(
    records: Sequence[Mapping[str, Any]],
    parse_rates: Mapping[str, float],
    min_parse_rate: float,
    repaired_at_least_strict: bool = True,
) -> CheckReport:
    """Run the predictions suite (see ``prediction_expectations`` for the last flag)."""
    df = prediction_table(records, parse_rates)
    suite = prediction_expectations(min_parse_rate, repaired_at_least_strict)
    return run_suite("predictions", df, suite, id_column="key")
