"""Joining a Ray cluster from a stage command (the prompt stage's executor, the evaluation's replicas).

``address``: ``""`` starts a one-node cluster inside the command (stopped when it ends), ``auto`` joins
the cluster this node belongs to (``ray start``), ``HOST:PORT`` a head's GCS, ``ray://HOST:PORT`` a
remote cluster through Ray Client. The dashboard's address is logged when the cluster has one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("stvg.cluster")


@contextlib.contextmanager
def ray_cluster(address: str) -> Iterator[tuple[Any, str]]:
    """The ``ray`` module, connected, and the dashboard's address ('' without one).

    A connection made here is closed on exit; one the caller already opened is used and kept.
    """
    import ray

    if ray.is_initialized():
        yield ray, ""
        return
    context = ray.init(address=address or None, logging_level=logging.WARNING, log_to_driver=False)
    dashboard = getattr(context, "dashboard_url", "") or ""
    if dashboard:
        log.info("Ray dashboard at http://%s", dashboard)
    try:
        yield ray, dashboard
    finally:
        ray.shutdown()
