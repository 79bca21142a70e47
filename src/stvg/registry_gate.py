"""The promotion gate: may a challenger model replace the champion? Pure logic, no registry access.

Rule (issue 6): the challenger must beat the champion on the primary metric by MORE than ``margin``
and must not fall below the champion by more than ``tolerance`` on any other compared metric. The
first model (no champion) is promoted. Compared metrics are higher-is-better (IoU-style benchmark
scores); margin and tolerance are absolute differences in the metric's own units.

By default the regression check covers the policy's own scores only (``gated_by_default``): the
baselines' numbers (``oracle/…``, ``random/…``) describe the benchmark and the prompted data, not the
model, and move with a new data version; counts (``n``, ``failures/…``, ``…_frames``) are not
higher-is-better, so a challenger that fails less would read as a regression.

A metric the gate must compare but one side lacks is an error, not a silent pass: a missing number
could hide a regression. ``compare`` narrows the regression check to chosen metrics (e.g. to ignore
counts such as ``n_samples`` that ``metrics.json`` may carry).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

# Float noise guard: 0.51 - 0.50 is 0.010000000000000009, which must not count as "more than 0.01".
_EPS = 1e-9

Status = Literal["primary-better", "primary-not-better", "ok", "regressed", "new"]


class GateError(ValueError):
    """The gate cannot decide (a metric is missing or not a finite number); the message says which."""


@dataclass(frozen=True)
class MetricComparison:
    """One metric side by side; ``delta`` is challenger minus champion (None without a champion)."""

    name: str
    challenger: float
    champion: float | None
    delta: float | None
    status: Status


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict with the evidence: every compared metric and a one-line reason."""

    promote: bool
    reason: str
    primary: str
    margin: float
    tolerance: float
    comparisons: tuple[MetricComparison, ...]

    @property
    def regressions(self) -> tuple[str, ...]:
        """Names of the metrics that regressed beyond the tolerance."""
        return tuple(c.name for c in self.comparisons if c.status == "regressed")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for ``--json`` output and registry tags)."""
        return asdict(self) | {"regressions": list(self.regressions)}

    def table(self) -> str:
        """A fixed-width text table: metric, challenger, champion, delta, status."""
        header = ("metric", "challenger", "champion", "delta", "status")
        rows = [header] + [
            (
                c.name,
                f"{c.challenger:.4f}",
                "-" if c.champion is None else f"{c.champion:.4f}",
                "-" if c.delta is None else f"{c.delta:+.4f}",
                c.status,
            )
            for c in self.comparisons
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same table as Markdown (for the model version description)."""
        lines = ["| metric | challenger | champion | delta | status |", "|---|---:|---:|---:|---|"]
        for c in self.comparisons:
            champion = "-" if c.champion is None else f"{c.champion:.4f}"
            delta = "-" if c.delta is None else f"{c.delta:+.4f}"
            lines.append(f"| {c.name} | {c.challenger:.4f} | {champion} | {delta} | {c.status} |")
        return "\n".join(lines)


BASELINE_PREFIXES = ("oracle/", "random/")  # the evaluate stage's baselines
COUNT_NAMES = ("n",)
COUNT_PREFIXES = ("failures/",)
COUNT_SUFFIXES = ("_frames",)


def gated_by_default(name: str) -> bool:
    """True for a metric the regression check compares when ``compare`` is empty: not a baseline's
    number and not a count."""
    return not (
        name.startswith(BASELINE_PREFIXES + COUNT_PREFIXES)
        or name in COUNT_NAMES
        or name.endswith(COUNT_SUFFIXES)
    )


def decide_promotion(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    primary: str,
    margin: float,
    tolerance: float,
    compare: Iterable[str] = (),
) -> PromotionDecision:
    """Apply the gate; ``compare`` empty means every metric the champion has that ``gated_by_default``.

    Raises GateError when the primary metric or a compared metric is missing on either side, when a
    value is not a finite number, or when margin/tolerance are negative.
    """
    if margin < 0 or tolerance < 0:
        raise GateError(f"margin and tolerance must be >= 0, got margin={margin}, tolerance={tolerance}")
    _check_values(challenger, "challenger")
    if primary not in challenger:
        raise GateError(
            f"challenger has no primary metric {primary!r} (has: {_names(challenger)}); "
            "evaluate it again or set registry.primary_metric to one of those"
        )
    if champion is None:
        rows = tuple(
            MetricComparison(name, float(challenger[name]), None, None, "new")
            for name in _ordered(challenger, primary)
        )
        return PromotionDecision(True, "first model: no champion yet", primary, margin, tolerance, rows)

    _check_values(champion, "champion")
    if primary not in champion:
        raise GateError(
            f"champion has no primary metric {primary!r} (has: {_names(champion)}); "
            "re-evaluate the champion or choose a registry.primary_metric both models have"
        )
    wanted = list(compare) or [name for name in champion if gated_by_default(name)]
    for side, metrics in (("challenger", challenger), ("champion", champion)):
        missing = sorted(set(wanted) - set(metrics))
        if missing:
            raise GateError(
                f"{side} lacks metric(s) {missing} that the gate compares (has: {_names(metrics)}); "
                "re-evaluate it or list the metrics to compare in registry.gate_metrics"
            )

    rows: list[MetricComparison] = []
    primary_delta = float(challenger[primary]) - float(champion[primary])
    beats = primary_delta > margin + _EPS
    rows.append(
        MetricComparison(
            primary,
            float(challenger[primary]),
            float(champion[primary]),
            primary_delta,
            "primary-better" if beats else "primary-not-better",
        )
    )
    for name in sorted(set(wanted) - {primary}):
        delta = float(challenger[name]) - float(champion[name])
        status: Status = "regressed" if -delta > tolerance + _EPS else "ok"
        rows.append(MetricComparison(name, float(challenger[name]), float(champion[name]), delta, status))

    regressed = [r.name for r in rows if r.status == "regressed"]
    if not beats:
        reason = f"{primary} {primary_delta:+.4f} does not beat the champion by more than margin {margin}"
    elif regressed:
        reason = f"{primary} improves {primary_delta:+.4f} but {', '.join(regressed)} regress beyond tolerance {tolerance}"
    else:
        reason = f"{primary} improves {primary_delta:+.4f} (> margin {margin}); no metric regresses beyond {tolerance}"
    return PromotionDecision(beats and not regressed, reason, primary, margin, tolerance, tuple(rows))


def _check_values(metrics: Mapping[str, float], side: str) -> None:
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise GateError(f"{side} metric {name!r} must be a finite number, got {value!r}")


def _ordered(metrics: Mapping[str, float], primary: str) -> list[str]:
    return [primary] + sorted(set(metrics) - {primary})


def _names(metrics: Mapping[str, float]) -> str:
    return ", ".join(sorted(metrics)) or "nothing"
