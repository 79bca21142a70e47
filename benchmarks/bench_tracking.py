"""Tracking throughput: the local sqlite store vs the team's MLflow server on PostgreSQL, same workload.

    .venv/bin/python benchmarks/bench_tracking.py [--runs 40] [--metrics 1000] [--batches 10] [--writers 4]
                                                 [--tracking-uri http://host:port]

Prints one JSON object per store, then their ratio. For each store: run-creation latency (median and
p95 of ``create_run``), single ``log_metric`` calls per second from one client, the same from
``--writers`` processes at once (each into its own run; failed calls counted), and metrics per second
through ``log_batch`` (1,000 per call). "sqlite" is the project's default store (``sqlite:///…/mlflow.db``,
in-process, no server); "server" is ``mlflow server`` on PostgreSQL with basic auth and the S3 artifact
store, reached over HTTP as the pipeline reaches it. Without ``--tracking-uri`` the services are started
here in a temporary folder (``stvg services up``) and stopped afterwards; as root this script first moves
itself into a network namespace holding only loopback (``unshare --net``), like the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

from stvg.env import read_env_file

BATCH = 1000  # metrics per log_batch call (MLflow's limit)


def _writer(uri: str, run_id: str, calls: int) -> tuple[int, int, float, float]:
    """One of the parallel writers: calls that succeeded, calls that raised, and when it logged (epoch s)."""
    client, ok, failed = MlflowClient(tracking_uri=uri), 0, 0
    client.get_run(run_id)  # connected before the clock starts
    start = time.time()
    for step in range(calls):
        try:
            client.log_metric(run_id, "parallel", float(step), step=step)
            ok += 1
        except Exception:  # noqa: BLE001 - e.g. sqlite's "database is locked": counted, not fatal
            failed += 1
    return ok, failed, start, time.time()


def bench_parallel(client: MlflowClient, experiment: str, writers: int, calls: int) -> dict[str, float]:
    """``writers`` processes logging single metrics at once: total calls/s and how many failed."""
    runs = [client.create_run(experiment).info.run_id for _ in range(writers)]
    with ProcessPoolExecutor(writers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_writer, [client.tracking_uri] * writers, runs, [calls] * writers))
    seconds = max(r[3] for r in results) - min(r[2] for r in results)  # from the first call to the last
    ok = sum(r[0] for r in results)
    stored = sum(len(client.get_metric_history(r, "parallel")) for r in runs)
    assert stored == ok, (stored, ok)  # every call that returned is there
    return {
        "parallel_log_metric_per_s": round(ok / seconds, 1),
        "parallel_failed_calls": sum(r[1] for r in results),
    }


def bench_store(
    client: MlflowClient, label: str, runs: int, metrics: int, batches: int, writers: int
) -> dict[str, object]:
    experiment = client.create_experiment(f"bench-{label}-{time.time_ns()}")
    latencies = []
    for i in range(runs):
        start = time.perf_counter()
        client.create_run(experiment, run_name=f"run-{i}")
        latencies.append(time.perf_counter() - start)
    run_id = client.create_run(experiment).info.run_id
    start = time.perf_counter()
    for step in range(metrics):
        client.log_metric(run_id, "single", float(step), step=step)
    single_s = time.perf_counter() - start
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for b in range(batches):
        batch = [Metric("batched", float(i), now, b * BATCH + i) for i in range(BATCH)]
        client.log_batch(run_id, metrics=batch)
    batch_s = time.perf_counter() - start
    assert len(client.get_metric_history(run_id, "single")) == metrics  # every value arrived
    assert len(client.get_metric_history(run_id, "batched")) == batches * BATCH
    parallel = bench_parallel(client, experiment, writers, metrics // writers)
    latencies.sort()
    return {
        "store": label,
        "tracking_uri": client.tracking_uri,
        "create_run_ms_median": round(1000 * statistics.median(latencies), 2),
        "create_run_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
        "log_metric_per_s": round(metrics / single_s, 1),
        "log_batch_metrics_per_s": round(batches * BATCH / batch_s, 1),
        **parallel,
        "writers": writers,
    }


def _isolated() -> bool:
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def _services(action: str, folder: Path) -> None:
    cmd = [sys.executable, "-m", "flows.cli", "services", action, "--dir", str(folder)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=os.environ | {"STVG_SERVICES_ENV": "none"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--writers", type=int, default=4, help="processes logging at once")
    parser.add_argument(
        "--tracking-uri", default="", help="an existing server (credentials from the environment)"
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri and os.geteuid() == 0 and not _isolated():
        inner = [sys.executable, *sys.argv]
        return subprocess.call(
            ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
        )
    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="stvg-bench-tracking-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o711)  # the `postgres` user must enter it
        local = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
        local.search_experiments()  # the store's migrations are set-up, not part of the measurement
        print(
            json.dumps(
                sqlite := bench_store(local, "sqlite", args.runs, args.metrics, args.batches, args.writers)
                | machine
            )
        )
        uri = args.tracking_uri
        if not uri:
            _services("up", folder / ".services")
            env = read_env_file(folder / ".services" / "env")
            os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")})
            uri = env["MLFLOW_TRACKING_URI"]
        try:
            client = MlflowClient(tracking_uri=uri)
            server = bench_store(client, "server", args.runs, args.metrics, args.batches, args.writers)
            print(json.dumps(server | machine))
        finally:
            if not args.tracking_uri:
                _services("down", folder / ".services")
    ratio = {
        k: round(float(server[k]) / float(sqlite[k]), 2) if float(sqlite[k]) else None
        for k in sqlite
        if k.endswith(("_ms_median", "_per_s"))
    }
    print(json.dumps({"server_over_sqlite": ratio}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
