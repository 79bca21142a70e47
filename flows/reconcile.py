"""Close what a killed pipeline left open: its MLflow runs and its Prefect flow run, still RUNNING.

A pipeline killed with SIGKILL (or by a lost machine) never reaches its ``except``/``finally``, so its
MLflow parent run, the stage run it was in and its Prefect flow run stay RUNNING forever, and a
reader cannot tell a live run from a dead one. Each parent run therefore records its owner
(``OWNER_TAGS``: host, pid and the process's start time, which tells a reused pid apart). When a
pipeline starts it reconciles its experiment: a RUNNING parent run whose owner process on this host
no longer exists is marked FAILED, with a ``stvg.reconciled`` note naming the run that found it, and
so are its RUNNING stage runs; its Prefect flow run (``prefect.flow_run_id`` tag) is set CRASHED with
the same note. A run owned by another host, or by a live process, is left alone: it may be running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from mlflow import MlflowClient

from flows import tracking

log = logging.getLogger(__name__)

OWNER_HOST, OWNER_PID, OWNER_STARTED = "stvg.owner.host", "stvg.owner.pid", "stvg.owner.started"
OWNER_TAGS = (OWNER_HOST, OWNER_PID, OWNER_STARTED)
RECONCILED_TAG = "stvg.reconciled"
FLOW_RUN_TAG = "prefect.flow_run_id"


def owner_tags() -> dict[str, str]:
    """The tags naming this process as a run's owner."""
    import psutil

    me = psutil.Process(os.getpid())
    return {OWNER_HOST: socket.gethostname(), OWNER_PID: str(me.pid), OWNER_STARTED: repr(me.create_time())}


def owner_gone(tags: Mapping[str, str]) -> bool:
    """True when the run's owner was a process on this host that has ended (False when unknown)."""
    import psutil

    if tags.get(OWNER_HOST) != socket.gethostname() or not tags.get(OWNER_PID, "").isdigit():
        return False
    try:
        process = psutil.Process(int(tags[OWNER_PID]))
        return repr(process.create_time()) != tags.get(OWNER_STARTED)  # the pid now names another process
    except psutil.NoSuchProcess:
        return True


def reconcile_experiment(client: MlflowClient, experiment_id: str, found_by: str) -> list[str]:
    """Mark the runs of dead pipelines FAILED (and their Prefect flow runs CRASHED); returns their ids."""
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    orphans = [r for r in running if tracking.PARENT_TAG not in r.data.tags and owner_gone(r.data.tags)]
    closed = []
    for parent in orphans:
        tags = parent.data.tags
        note = (
            f"process {tags[OWNER_PID]} on {tags[OWNER_HOST]} ended without closing this run (killed?); "
            f"marked FAILED by pipeline run {found_by}"
        )
        stages = [r for r in running if r.data.tags.get(tracking.PARENT_TAG) == parent.info.run_id]
        for run in [*stages, parent]:
            tracking.log_tags(client, run.info.run_id, {RECONCILED_TAG: note})
            tracking.end_run(client, run.info.run_id, failed=True)
            closed.append(run.info.run_id)
        if tags.get(FLOW_RUN_TAG):
            crash_flow_run(tags[FLOW_RUN_TAG], note)
        log.warning("MLflow run %s: %s", parent.info.run_id, note)
    return closed


def crash_flow_run(flow_run_id: str, note: str) -> None:
    """Set a Prefect flow run left RUNNING to CRASHED (a no-op for one that has a final state)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
            if state is not None and not state.is_final():
                client.set_flow_run_state(flow_run_id, Crashed(message=note), force=True)
    except Exception as exc:  # noqa: BLE001 - another Prefect API (or none) must not stop the pipeline
        log.warning("could not mark Prefect flow run %s CRASHED: %s", flow_run_id, exc)
