"""A tracking server that goes away mid-run: fail naming it, and close the run once it is back.

The MLflow client retries each call (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``…_BACKOFF_FACTOR``; the
services' env file sets about 30 s), so a server restart inside that window goes unnoticed. A longer
outage fails the flow with ``TrackingUnavailable`` naming the server; the runs it could not close are
written to ``mlflow/unclosed_runs.json`` in the checkout, and the next pipeline run against that server
from this checkout (``close_unclosed``) marks them FAILED, finalizes a half-logged model as FAILED and deletes a model
version the run registered without a promotion decision, so nothing stays half-registered.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from flows import tracking
from flows.promote import DECISION_TAG

log = logging.getLogger(__name__)

JOURNAL = Path("mlflow") / "unclosed_runs.json"  # relative to the checkout
HEALTH_TIMEOUT_S = 5.0


class TrackingUnavailable(RuntimeError):
    """The tracking server stopped answering during a run; names it and what happens to the run."""

    def __init__(self, uri: str, run_id: str, cause: BaseException) -> None:
        super().__init__(
            f"the MLflow tracking server {uri} is unreachable ({type(cause).__name__}: {str(cause)[:300]}); "
            f"run {run_id} stays RUNNING there until the next pipeline run from this checkout marks it FAILED "
            f"(check the server: `stvg services status`)"
        )


def server_reachable(uri: str) -> bool:
    """Whether an http(s) tracking server answers its health check (local stores always count as reachable)."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return True  # it answers
    except OSError:
        return False


def remember_unclosed(root: Path, uri: str, run_ids: Iterable[str], stage: str) -> None:
    entries = _read(root)
    known = {e["run_id"] for e in entries}
    entries += [{"run_id": r, "tracking_uri": uri, "stage": stage} for r in run_ids if r and r not in known]
    path = Path(root) / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")


def close_unclosed(client: MlflowClient, root: Path) -> list[str]:
    """Mark FAILED the runs a tracking outage left open on this client's server; returns their ids."""
    entries = _read(root)
    mine = [e for e in entries if e["tracking_uri"] == client.tracking_uri]
    if not mine:
        return []
    closed = []
    for entry in mine:
        _close(client, entry["run_id"], entry["stage"])
        closed.append(entry["run_id"])
    rest = [e for e in entries if e["tracking_uri"] != client.tracking_uri]
    path = Path(root) / JOURNAL
    if rest:
        path.write_text(json.dumps(rest, indent=2) + "\n", encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
    log.info("closed %d run(s) left open by a tracking-server outage: %s", len(closed), ", ".join(closed))
    return closed


def _close(client: MlflowClient, run_id: str, stage: str) -> None:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return  # deleted meanwhile
    if run.info.status == "RUNNING":
        reason = "the tracking server was unreachable; closed by the next run"
        tracking.log_tags(client, run_id, {"stvg.failed_stage": stage, "stvg.failure": reason})
        tracking.end_run(client, run_id, failed=True)
    for model in client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    ):
        if str(model.status) in ("PENDING", "LoggedModelStatus.PENDING"):
            client.finalize_logged_model(model.model_id, "FAILED")
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if DECISION_TAG not in version.tags:
            log.warning("deleting %s version %s: registered by run %s without a promotion decision",
                        version.name, version.version, run_id)  # fmt: skip
            client.delete_model_version(version.name, str(version.version))


def _read(root: Path) -> list[dict[str, str]]:
    path = Path(root) / JOURNAL
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        log.warning("%s is not valid JSON; ignoring it", path)
        return []
    return [e for e in entries if isinstance(e, dict) and {"run_id", "tracking_uri", "stage"} <= set(e)]
