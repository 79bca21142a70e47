"""`benchmarks/gpu_report.sh` itself, with its three steps replaced by a stand-in interpreter that fails
each step the way a real one can (a Trainer's printed dict in its output, then a non-zero exit): the
report is still written, with every measurement printed before the failure, each step's outcome and
the time limit it ran under."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FAILING_STEPS = """#!/bin/sh
# the report's own assembly ("-": a script on stdin) runs on the real interpreter; every step fails
if [ "$1" = "-" ]; then exec "{python}" "$@"; fi
echo '{{"bench": "stand_in", "argv": "'"$*"'"}}'
echo "{{'loss': '2.98e-08', 'grad_norm': '1.359'}}"
exit 1
"""


def _report(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    python = tmp_path / "python"
    python.write_text(FAILING_STEPS.format(python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    env = os.environ | {"PYTHON": str(python)}
    script = REPO_ROOT / "benchmarks" / "gpu_report.sh"
    proc = subprocess.run(
        ["bash", str(script), *args, "--out", "report.json"],
        cwd=tmp_path,  # a relative --out is relative to where the user ran it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, json.loads((tmp_path / "report.json").read_text())


def test_failing_steps_with_printed_trainer_dicts_still_give_the_report(tmp_path: Path) -> None:
    proc, report = _report(tmp_path, "--dry-run")
    assert proc.returncode == 1, proc.stderr  # a failed step fails the report
    records = report["records"]
    steps = {r["step"]: r for r in records if r["bench"] == "gpu_report/step"}
    assert sorted(steps) == ["gpu_grpo_step", "gpu_prompt", "gpu_tests"]
    assert {s["status"] for s in steps.values()} == {"failed"} and {s["rc"] for s in steps.values()} == {1}
    stand_ins = [r["argv"] for r in records if r["bench"] == "stand_in"]
    assert len(stand_ins) == 3 and "benchmarks/gpu_prompt.py --dry-run" in stand_ins[1]
    assert not any("loss" in r for r in records)  # the Trainer's dicts are not measurements


def test_the_gpu_budget_passes_time_a_step_left_to_the_next(tmp_path: Path) -> None:
    _, report = _report(tmp_path)  # the GPU branch: its limits, with steps that end at once
    limits = {r["step"]: r["limit_s"] for r in report["records"] if r["bench"] == "gpu_report/step"}
    assert limits["gpu_tests"] == 180  # 8 min less the two later steps' reserves (150 s each)
    assert 320 <= limits["gpu_prompt"] <= 330  # the tests' unused time, the GRPO step's reserve kept
    assert 470 <= limits["gpu_grpo_step"] <= 480  # everything left
