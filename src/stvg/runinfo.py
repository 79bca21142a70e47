"""Facts about a run that are not part of a version: wall times, host, finish date, how it resumed.

Every hashed stage output is a pure function of the stage's inputs, params and code, so wall times,
host names, dates and the story of the run (resumed from which checkpoint, which tracker it reported
to) never go into one. A stage writes them to ``<artifacts>/run_info/<stage>.json``, beside the stage
folders (``run_info_path``): no dvc.yaml stage declares that folder, so DVC never hashes it, and the
pipeline flow logs the file into the stage's MLflow run (its numbers as ``<stage>/<name>`` metrics).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stvg.io import write_json_atomic

RUN_INFO_DIR = "run_info"


def run_info_path(out: str | Path, stage: str) -> Path:
    """Where stage ``stage`` writing to ``out`` (``artifacts/<stage>``) records its run facts."""
    return Path(out).parent / RUN_INFO_DIR / f"{stage}.json"


def write_run_info(
    out: str | Path, stage: str, seconds: Mapping[str, float], facts: Mapping[str, Any] | None = None
) -> Path:
    """Record wall times (``name -> seconds``), other facts, the host and the UTC finish time."""
    record: dict[str, Any] = {
        "stage": stage,
        "host": socket.gethostname(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **dict(facts or {}),
        **{name: round(float(value), 3) for name, value in seconds.items()},
    }
    path = run_info_path(out, stage)
    write_json_atomic(path, record)
    return path


def read_run_info(out: str | Path, stage: str) -> dict[str, Any]:
    """The last recorded facts of ``stage`` ({} when it never wrote any)."""
    try:
        return dict(json.loads(run_info_path(out, stage).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}
