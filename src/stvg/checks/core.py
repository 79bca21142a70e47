"""The quality-gate framework: expectation specs, one validation call, a report a person can act on.

This is the only module that imports great_expectations (lazily: the import takes ~5 s). A suite is a
plain list of ``Expect`` specs, one per risk, each naming a GX 1.x expectation class and saying why
it matters::

    from stvg.checks.core import Expect, run_suite

    LABEL_EXPECTATIONS = [
        Expect("ExpectColumnValuesToBeUnique", {"column": "sample_id"}, "one label per sample"),
        Expect("ExpectColumnValuesToBeBetween", {"column": "vote_share", "min_value": 0, "max_value": 1},
               "a vote share is a fraction"),
    ]
    report = run_suite("label", table, LABEL_EXPECTATIONS, id_column="sample_id")
    report.raise_on_failure()          # CheckFailed, whose message names expectations and samples

``kind`` is any class name in ``great_expectations.expectations`` and ``kwargs`` are that class's
arguments (GX validates them). ``run_suite`` builds an ephemeral context, a pandas data source with a
whole-dataframe batch and a suite of ``gx.expectations.*`` objects, validates once, and returns a
``CheckReport``: JSON-ready (``to_dict``), with the offending row ids (``id_column``) or values.
Checks never mutate the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MAX_EXAMPLES = 10


@dataclass(frozen=True)
class Expect:
    """One expectation: a GX expectation class name, its arguments, and the risk it guards against."""

    kind: str  # e.g. "ExpectColumnValuesToBeBetween"
    kwargs: dict[str, Any]
    why: str

    @property
    def column(self) -> str | None:
        """The column(s) the expectation looks at, for messages."""
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        pair = [self.kwargs[k] for k in ("column_A", "column_B") if k in self.kwargs]
        columns = pair or list(self.kwargs.get("column_list", []))
        return ", ".join(map(str, columns)) or None


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one suite on one table; ``failures`` hold one dict per failed expectation."""

    name: str
    success: bool
    n_rows: int
    statistics: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for the MLflow artifact)."""
        return asdict(self)

    def to_json(self) -> str:
        """``to_dict`` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def message(self) -> str:
        """A human message: which expectations failed, why they matter, and the offending samples."""
        if self.success:
            return f"check `{self.name}` passed: {self.statistics.get('evaluated_expectations', 0)} expectations on {self.n_rows} rows"
        lines = [f"check `{self.name}` failed: {len(self.failures)} expectation(s) on {self.n_rows} rows"]
        for f in self.failures:
            column = f" on `{f['column']}`" if f.get("column") else ""
            what = f.get("error") or _what(f)
            examples = f"; e.g. {', '.join(map(str, f['examples']))}" if f.get("examples") else ""
            suite = f"[{f['suite']}] " if f.get("suite") else ""
            lines.append(f"  - {suite}{f['expectation']}{column} ({f['why']}): {what}{examples}")
        return "\n".join(lines)

    def raise_on_failure(self) -> CheckReport:
        """Return self when the suite passed, else raise ``CheckFailed``."""
        if not self.success:
            raise CheckFailed(self)
        return self


def _what(failure: dict[str, Any]) -> str:
    """Offending rows, or for a table-level expectation (a min, a mean, a count) the measured value."""
    if not failure["unexpected_count"] and failure.get("observed_value") is not None:
        return f"measured {failure['observed_value']}"
    return f"{failure['unexpected_count']} offending row(s)"


def merge_reports(name: str, reports: Sequence[CheckReport]) -> CheckReport:
    """One report over several tables (e.g. train and test files); failures keep their table's name."""
    failures = [{**f, "suite": r.name} for r in reports for f in r.failures]
    return CheckReport(
        name=name,
        success=all(r.success for r in reports),
        n_rows=sum(r.n_rows for r in reports),
        # the totals first, so message() counts every suite's expectations; then each suite's own
        statistics={
            "evaluated_expectations": sum(
                int(r.statistics.get("evaluated_expectations", 0)) for r in reports
            ),
            **{r.name: r.statistics for r in reports},
        },
        failures=failures,
    )


class CheckFailed(RuntimeError):
    """A quality gate failed; ``report`` holds the details, the message names expectations and samples."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(report.message())
        self.report = report


def run_suite(
    name: str,
    df: pd.DataFrame,
    expectations: Sequence[Expect],
    id_column: str | None = None,
) -> CheckReport:
    """Validate ``df`` against the expectations with great_expectations and report the failures.

    ``id_column`` names the column whose values identify offending rows in the report (e.g.
    ``sample_id``); without it the offending values themselves are reported.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if id_column is not None and id_column not in df.columns:
        raise ValueError(f"check `{name}`: id_column {id_column!r} is not a column of the table")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name=f"{name}_source")
        .add_dataframe_asset(name=f"{name}_table")
        .add_batch_definition_whole_dataframe(f"{name}_all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    # Built in one go: add_expectation compares each new expectation with all earlier ones (quadratic).
    built = [_build_expectation(gx, name, index, spec) for index, spec in enumerate(expectations)]
    suite = gx.ExpectationSuite(name=name, expectations=built)
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if id_column is not None:
        result_format["unexpected_index_column_names"] = [id_column]
    result = batch.validate(suite, result_format=result_format)

    failures = []
    for r in result.results:
        if r.success:
            continue
        spec = expectations[int(r.expectation_config.meta["stvg_index"])]
        failures.append(_failure(spec, r, id_column))
    failures.sort(key=lambda f: f["index"])
    for f in failures:
        del f["index"]
    return CheckReport(
        name=name,
        success=bool(result.success),
        n_rows=len(df),
        statistics={k: _plain(v) for k, v in dict(result.statistics).items()},
        failures=failures,
    )


def _build_expectation(gx: Any, suite: str, index: int, spec: Expect) -> Any:
    cls = getattr(gx.expectations, spec.kind, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(
            f"check `{suite}`: unknown expectation {spec.kind!r}; use a class name from "
            "great_expectations.expectations, e.g. ExpectColumnValuesToBeBetween"
        )
    try:
        return cls(**spec.kwargs, meta={"stvg_index": index, "why": spec.why})
    except Exception as exc:  # GX raises pydantic errors for bad arguments
        raise ValueError(f"check `{suite}`: invalid arguments for {spec.kind} {spec.kwargs}: {exc}") from exc


def _failure(spec: Expect, r: Any, id_column: str | None) -> dict[str, Any]:
    details = dict(r.result or {})
    failure: dict[str, Any] = {
        "index": int(r.expectation_config.meta["stvg_index"]),
        "expectation": spec.kind,
        "column": spec.column,
        "why": spec.why,
        "unexpected_count": int(details.get("unexpected_count") or 0),
        "examples": _examples(details, id_column),
    }
    if "observed_value" in details:
        failure["observed_value"] = _plain(details["observed_value"])
    error = _exception_message(r.exception_info)
    if error:
        failure["error"] = error
    return failure


def _examples(details: dict[str, Any], id_column: str | None) -> list[Any]:
    """Offending row ids when an id column was given, else offending values; unique, at most 10."""
    rows = details.get("unexpected_index_list") or []
    if id_column is not None and rows and isinstance(rows[0], dict):
        values = [row.get(id_column) for row in rows]
    else:
        values = list(details.get("unexpected_list") or details.get("partial_unexpected_list") or [])
    out: list[Any] = []
    for v in map(_plain, values):
        if v not in out:
            out.append(v)
        if len(out) == MAX_EXAMPLES:
            break
    return out


def _exception_message(info: Any) -> str:
    if not info:
        return ""
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(e.get("exception_message")) for e in entries if isinstance(e, dict) and e.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages))


def _plain(value: Any) -> Any:
    """numpy scalars, tuples and NaN as plain JSON values."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, list | dict | str):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
