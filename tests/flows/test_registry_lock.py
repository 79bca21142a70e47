"""The registration slot against a real (test-harness) Prefect server: holders never overlap."""

from __future__ import annotations

import contextvars
import itertools
import threading
import time

import pytest

from flows.registry_lock import limit_name, registry_lock

pytestmark = pytest.mark.slow  # a temporary Prefect server


def test_registration_slots_are_held_one_at_a_time() -> None:
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    held: list[tuple[float, float]] = []

    def register() -> None:
        with registry_lock("stvg-lock-test"):
            start = time.monotonic()
            time.sleep(0.5)
            held.append((start, time.monotonic()))

    with prefect_test_harness(server_startup_timeout=180):
        threads = [  # each in a copy of this context: the harness's API URL is a context setting
            threading.Thread(target=contextvars.copy_context().run, args=(register,)) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(limit_name("stvg-lock-test"))
    assert len(held) == 3
    held.sort()
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(held)), held
    assert limit.limit == 1 and limit.active
