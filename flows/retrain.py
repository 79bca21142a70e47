"""Scheduled retraining: rerun the pipeline and the promotion when the raw data changed.

Run once:            ``python -m flows.retrain run [--params params.yaml] [--force]``  (= ``stvg retrain run``)
Serve on a schedule: ``python -m flows.retrain serve [--cron "0 3 * * 1"] [--timezone UTC]``

``serve`` registers two deployments with the Prefect server named by ``PREFECT_API_URL`` and executes
their runs in this process (it is its own worker): ``retrain/weekly`` on the cron schedule, and
``pipeline/on-demand`` without one (``prefect deployment run pipeline/on-demand``). ``prefect.yaml``
declares the same ``retrain/weekly`` deployment for a process work pool, for users who prefer
``prefect deploy`` + ``prefect worker start``.

The trigger: every run first runs the download flow (re-fetch or re-generate the sources, raw gate,
``dvc add data``), so new upstream data is noticed by the schedule itself, not only after someone
downloads by hand. Its result is the raw-data version, the md5 that ``data.dvc`` now pins; the
champion records the version it was trained on as its ``raw_data_version`` tag. Equal -> "up to
date", nothing else runs. Different (or no champion yet, or ``--force``) -> the pipeline flow runs (it
registers a new ``challenger``; its own download step finds the data current and logs the raw gate
into the run), then the gated promotion unless the pipeline already decided it. The trigger compares
what DVC versions; it does not hash ``data/`` itself. ``params_path`` is resolved once against the
project root (``STVG_ROOT``) and handed on as an absolute path, so both flows read the same file
whatever the worker's working directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from prefect import flow, serve
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.schedules import Cron

from flows.promote import promote_as_configured
from flows.registry import CHALLENGER, CHAMPION, open_client, version_by_alias
from stvg.config import load_params
from stvg.env import configure_environment

DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00
DEFAULT_TIMEZONE = "UTC"


def run_download(params_path: str) -> str:
    """The download flow (fetch/generate, raw gate, ``dvc add data``) as a subflow; its raw-data version."""
    from flows.download import download_flow

    return download_flow(params_path=params_path).raw_data_version


def run_pipeline(params_path: str) -> Any:
    """The full pipeline flow (download -> ... -> evaluate -> register), as a subflow."""
    from flows.pipeline import pipeline_flow

    return pipeline_flow(params_path=params_path)


def resolve_params(root: Path, params_path: str) -> Path:
    """``params_path`` as an absolute path: relative ones are taken from the project root, not the CWD."""
    return (root / params_path).resolve()


@flow(name="retrain")
def retrain_flow(params_path: str = "params.yaml", force: bool = False) -> dict[str, Any]:
    """Download, then retrain and promote when the raw-data version differs from the champion's."""
    logger = _logger()
    root = configure_environment()
    params_file = resolve_params(root, params_path)
    registry = load_params(params_file).registry
    client = open_client(root)

    current = run_download(str(params_file))
    champion = version_by_alias(client, registry.model_name, CHAMPION)
    trained_on = champion.tags.get("raw_data_version") if champion else None
    changed = current != trained_on
    status = {
        "model": registry.model_name,
        "champion_version": str(champion.version) if champion else None,
        "champion_raw_data_version": trained_on,
        "raw_data_version": current,
    }
    if champion is not None and not changed and not force:
        logger.info("up to date: champion v%s was trained on raw data %s", champion.version, current)
        return status | {"action": "up-to-date"}

    why = (
        "forced"
        if force
        else "no champion yet"
        if champion is None
        else f"raw data {trained_on} -> {current}"
    )
    logger.info("retraining (%s): running the pipeline", why)
    run_pipeline(str(params_file))

    challenger = version_by_alias(client, registry.model_name, CHALLENGER)
    if challenger is None:
        raise RuntimeError("the pipeline finished but registered no challenger; see its MLflow run")
    if "promotion.decision" not in challenger.tags:
        promote_as_configured(client, registry)
        challenger = client.get_model_version(registry.model_name, str(challenger.version))
    champion = version_by_alias(client, registry.model_name, CHAMPION)
    logger.info(
        "challenger v%s %s; champion is v%s",
        challenger.version,
        challenger.tags.get("promotion.decision", "undecided"),
        champion.version if champion else None,
    )
    return status | {
        "action": "retrained",
        "reason": why,
        "challenger_version": str(challenger.version),
        "decision": challenger.tags.get("promotion.decision"),
        "champion_version": str(champion.version) if champion else None,
    }


def build_deployments(
    cron: str = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE, params_path: str = "params.yaml"
) -> list[Any]:
    """``retrain/weekly`` on ``cron`` and, when the pipeline flow exists, ``pipeline/on-demand``."""
    deployments = [
        retrain_flow.to_deployment(
            name="weekly",
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"params_path": params_path},
            description="Download, then retrain and promote when the raw-data version differs from the champion's.",
            tags=["stvg"],
        )
    ]
    try:
        from flows.pipeline import pipeline_flow
    except ImportError:  # the pipeline flow is optional for serving the trigger alone
        return deployments
    deployments.append(
        pipeline_flow.to_deployment(name="on-demand", parameters={"params_path": params_path}, tags=["stvg"])
    )
    return deployments


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called as retrain_flow.fn(...) outside a flow run
        return logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """``stvg retrain run|serve``."""
    parser = argparse.ArgumentParser(prog="stvg retrain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="check the trigger once and retrain if the raw data changed")
    run.add_argument("--params", default="params.yaml")
    run.add_argument("--force", action="store_true", help="retrain even when the data is unchanged")
    srv = sub.add_parser("serve", help="serve the scheduled deployments (needs a Prefect server)")
    srv.add_argument("--params", default="params.yaml")
    srv.add_argument("--cron", default=DEFAULT_CRON, help=f"cron schedule (default {DEFAULT_CRON!r})")
    srv.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    args = parser.parse_args(argv)
    configure_environment()
    if args.command == "run":
        result = retrain_flow(params_path=args.params, force=args.force)
        print(json.dumps(result, sort_keys=True))
        return 0
    deployments = build_deployments(args.cron, args.timezone, args.params)
    print(
        f"serving {', '.join(d.name for d in deployments)}; schedule {args.cron!r} ({args.timezone})",
        file=sys.stderr,
    )
    serve(*deployments, pause_on_shutdown=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
