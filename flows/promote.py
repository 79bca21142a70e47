"""Gated promotion: move the ``champion`` alias to the ``challenger`` only when the gate passes.

Run: ``stvg promote [--params params.yaml] [--json]`` (the pipeline flow calls ``promote`` itself).

Both versions' benchmark metrics come from their ``metrics`` tag (written at registration), else
from their runs. The pure gate (``stvg.registry_gate.decide_promotion``: primary metric better by more
than ``registry.margin``, no other metric worse by more than ``registry.tolerance``; the first model
becomes champion) decides; the decision, the metrics side by side and the reason are recorded on the
challenger version as ``promotion.*`` tags and in its description, whichever way it goes. The exit
status is 0 for a decision either way (a rejected challenger is a normal outcome) and 1 when no
decision was possible (no challenger, missing metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from flows.registry import (
    CHALLENGER,
    CHAMPION,
    DESCRIPTION_CHARS,
    fit_description,
    open_client,
    read_lineage,
    register_model,
    version_by_alias,
    version_metrics,
)
from flows.registry_lock import registry_lock
from stvg.config import Params, ParamsError, RegistryParams, load_params
from stvg.env import configure_environment
from stvg.registry_gate import GateError, PromotionDecision, decide_promotion

log = logging.getLogger(__name__)

_MAX_TAG_CHARS = 5000  # MLflow's model-version tag value limit
DECISION_TAG = "promotion.decision"


class PromotionError(RuntimeError):
    """No decision is possible (e.g. nothing has the ``challenger`` alias); the message says why."""


def promote(
    client: MlflowClient,
    model_name: str,
    primary_metric: str,
    margin: float,
    tolerance: float,
    compare: tuple[str, ...] = (),
) -> PromotionDecision:
    """Decide, move ``champion`` when the gate passes, and record the decision on the challenger.

    ``decision.promote`` is True when the challenger is the champion afterwards (also when it already
    was: then nothing is re-recorded). A challenger the gate already decided is not decided again
    (``promote`` False, nothing moved or recorded): each version gets one decision, against the champion
    of its time. Raises PromotionError without a challenger and GateError when metrics are missing.
    """
    challenger = version_by_alias(client, model_name, CHALLENGER)
    if challenger is None:
        raise PromotionError(
            f"model {model_name!r} has no version with alias {CHALLENGER!r}; run the pipeline (make run) first"
        )
    champion = version_by_alias(client, model_name, CHAMPION)
    challenger_metrics = version_metrics(client, challenger)
    if champion is not None and str(champion.version) == str(challenger.version):
        decision = decide_promotion(challenger_metrics, None, primary_metric, margin, tolerance)
        return replace(
            decision, reason=f"version {challenger.version} is already the champion; nothing to do"
        )

    champion_metrics = None if champion is None else version_metrics(client, champion)
    decision = decide_promotion(
        challenger_metrics, champion_metrics, primary_metric, margin, tolerance, compare
    )
    earlier = challenger.tags.get(DECISION_TAG)
    if earlier:  # the gate decides once per version: a later call reports, and moves nothing
        against = challenger.tags.get("promotion.champion_version", "?")
        reason = f"version {challenger.version} was already decided ({earlier} vs champion version {against})"
        return replace(decision, promote=False, reason=f"{reason}; nothing changed")
    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, str(challenger.version))
    _record(client, challenger, champion, decision)
    log.info(
        "%s version %s %s: %s",
        model_name,
        challenger.version,
        "promoted to champion" if decision.promote else "not promoted",
        decision.reason,
    )
    return decision


def register_and_promote(
    client: MlflowClient,
    run_id: str,
    root: Path,
    params: Params,
    *,
    model_dir: Path | None = None,
    metrics_path: Path | None = None,
    detector_weights: Path | None = None,
) -> tuple[ModelVersion, PromotionDecision]:
    """The pipeline's last step: register ``artifacts/train/model`` (bundled with the prompting
    configuration and ``artifacts/detector/weights.pt``) with the workspace lineage, then promote.

    Metrics are the numeric entries of ``artifacts/evaluate/metrics.json``; dvc.lock, data.dvc and
    params.yaml are logged with the run so ``stvg lineage`` can restore them exactly.
    """
    model_dir = model_dir or root / "artifacts" / "train" / "model"
    metrics_path = metrics_path or root / "artifacts" / "evaluate" / "metrics.json"
    detector_weights = detector_weights or root / "artifacts" / "detector" / "weights.pt"
    if not metrics_path.is_file():
        raise PromotionError(f"{metrics_path} not found; run `dvc repro evaluate` before registering")
    raw = json.loads(metrics_path.read_text(encoding="utf-8"))
    metrics = {k: float(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    files = {name: root / name for name in ("dvc.lock", "data.dvc", "params.yaml")}
    version = register_model(
        client,
        run_id,
        model_dir,
        params,
        read_lineage(root),
        metrics,
        detector_weights=detector_weights,
        lineage_files=files,
    )
    decision = promote_as_configured(client, params.registry)
    return client.get_model_version(params.registry.model_name, str(version.version)), decision


def promote_as_configured(client: MlflowClient, registry: RegistryParams) -> PromotionDecision:
    """``promote`` with the gate of the ``registry`` params section."""
    return promote(
        client,
        registry.model_name,
        registry.primary_metric,
        registry.margin,
        registry.tolerance,
        registry.gate_metrics,
    )


def _record(
    client: MlflowClient, challenger: ModelVersion, champion: ModelVersion | None, decision: PromotionDecision
) -> None:
    name, version = challenger.name, str(challenger.version)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    comparisons = json.dumps(decision.to_dict()["comparisons"], sort_keys=True)
    tags = {
        DECISION_TAG: "promoted" if decision.promote else "rejected",
        "promotion.reason": decision.reason,
        "promotion.champion_version": "none" if champion is None else str(champion.version),
        "promotion.primary_metric": decision.primary,
        "promotion.margin": repr(decision.margin),
        "promotion.tolerance": repr(decision.tolerance),
        "promotion.decided_at": when,
        "promotion.comparisons": comparisons if len(comparisons) <= _MAX_TAG_CHARS else "see description",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value[:_MAX_TAG_CHARS])
    versus = "no champion" if champion is None else f"champion version {champion.version}"
    section = (
        f"## Promotion {when}: {tags['promotion.decision']} (vs {versus})\n\n"
        f"{decision.reason}\n\n{decision.markdown()}"
    )
    previous = (challenger.description or "").rstrip()
    budget = DESCRIPTION_CHARS - (len(previous) + 2 if previous else 0)
    section = fit_description(section, max(budget, 0))
    client.update_model_version(
        name, version, description=f"{previous}\n\n{section}" if previous else section
    )


def main(argv: list[str] | None = None) -> int:
    """``stvg promote``: run the gate on challenger vs champion and print the table and decision."""
    parser = argparse.ArgumentParser(prog="stvg promote", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (registry section)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = configure_environment()
    try:
        registry = load_params(Path(args.params)).registry
        client = open_client(root)
        with registry_lock(registry.model_name):
            decision = promote_as_configured(client, registry)
    except (ParamsError, PromotionError, GateError) as exc:
        print(f"stvg promote: {exc}", file=sys.stderr)
        return 1
    challenger = version_by_alias(client, registry.model_name, CHALLENGER)
    champion = version_by_alias(client, registry.model_name, CHAMPION)
    summary = {
        "model": registry.model_name,
        "challenger_version": str(challenger.version) if challenger else None,
        "champion_version": str(champion.version) if champion else None,
        **decision.to_dict(),
    }
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(decision.table())
        verdict = "PROMOTED" if decision.promote else "NOT PROMOTED"
        print(f"\n{registry.model_name} v{summary['challenger_version']}: {verdict} — {decision.reason}")
        print(f"champion is now version {summary['champion_version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
