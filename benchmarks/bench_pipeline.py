"""The README's main command end to end: the pipeline flow on a fresh clone, then a no-op re-run.

    .venv/bin/python benchmarks/bench_pipeline.py [--keep]

Clones the repository's HEAD into a temporary folder (no data/, artifacts/, DVC cache or MLflow store:
what a fresh clone has), runs ``python -m flows.pipeline`` there with this environment's packages and
the clone's own code (``PYTHONPATH=<clone>/src``), then runs it again with nothing changed. Prints one
JSON line per run: wall seconds and the per-stage split read back from the run's MLflow store (each
stage's nested run: repro + gate + logging), and the registered version. Targets (issue): <= 15 min
fresh on 2 cores after install, <= 30 s for the no-op re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_pipeline(clone: Path) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(clone / "src"),
        "STVG_ROOT": str(clone),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.pipeline"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(
            f"pipeline failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return seconds


def stage_split(clone: Path) -> dict:
    """Seconds per stage of the latest pipeline run, from its nested MLflow runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{clone / 'mlflow' / 'mlflow.db'}")
    experiments = client.search_experiments()
    parents = client.search_runs(
        [e.experiment_id for e in experiments],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    parent = next(r for r in parents if "mlflow.parentRunId" not in r.data.tags)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    split = {
        c.info.run_name: round((c.info.end_time - c.info.start_time) / 1000, 1)
        for c in sorted(children, key=lambda c: c.info.start_time)
    }
    return {
        "stages_s": split,
        "flow_s": round((parent.info.end_time - parent.info.start_time) / 1000, 1),
        "registered_version": parent.data.tags.get("registered_version"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone (its path is printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stvg-bench-pipeline-"))
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        for name in ("fresh", "no-op"):
            seconds = run_pipeline(clone)
            record = {"bench": "pipeline", "run": name, "commit": commit, "wall_s": round(seconds, 1)}
            print(json.dumps({**record, **stage_split(clone), "cpus": os.cpu_count()}), flush=True)
    finally:
        if args.keep:
            print(json.dumps({"clone": str(clone)}))
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
