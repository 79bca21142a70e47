"""One registration at a time per model, across every checkout and machine that shares a Prefect server.

Registering a version, moving ``challenger`` and deciding the promotion are several MLflow calls; two
pipelines doing them at once could compare against a champion that is about to move, or decide the
same challenger twice. ``registry_lock`` holds a slot of a Prefect global concurrency limit of size 1
(``stvg-registry-<model>``, created on first use) around them; the Prefect server on PostgreSQL makes
the slot atomic, and its lease (5 min, renewed while held) frees it if the holder dies. Without a
Prefect server (``PREFECT_API_URL`` unset: a temporary server per process) there is nobody to share
with, and no lock is taken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

LIMIT_PREFIX = "stvg-registry-"
WAIT_TIMEOUT_S = 900.0  # another pipeline's registration takes seconds; a stuck one loses its lease in 5 min


def limit_name(model_name: str) -> str:
    return f"{LIMIT_PREFIX}{model_name}"


@contextmanager
def registry_lock(model_name: str) -> Iterator[None]:
    """Hold the model's registration slot (when a Prefect server is configured) for the ``with`` body."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = limit_name(model_name)
    _ensure_limit(name)
    log.info("waiting for the registration slot %s", name)
    with concurrency(name, occupy=1, timeout_seconds=WAIT_TIMEOUT_S, strict=True):
        yield


def _ensure_limit(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, active=True)
                )
            except ObjectAlreadyExists:
                pass  # another pipeline created it first
