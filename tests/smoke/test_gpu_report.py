"""`benchmarks/gpu_report.sh --dry-run`: the GPU report's three parts (the GPU tests, prompting throughput
and memory, one GRPO step) run end to end on the CPU at toy sizes and land in one JSON file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_runs_every_part_and_writes_one_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STVG_GPU_TESTS")}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_report.sh", "--dry-run", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    records = report["records"]
    assert report["dry_run"] is True and report["python"]
    steps = {r["step"]: r for r in records if r["bench"] == "gpu_report/step"}
    assert sorted(steps) == ["gpu_grpo_step", "gpu_prompt", "gpu_tests"]
    assert all(s["status"] == "ok" for s in steps.values()), steps

    tests = next(r for r in records if r["bench"] == "gpu_report/tests")
    # on the CPU: the SAM2.1-tiny prompt stage, the injected OOM, the bf16 GRPO step; SAM2.1-large, the
    # real OOM and two GPUs skip
    assert tests["passed"] >= 3 and tests["failures"] == tests["errors"] == 0, tests

    prompt = {r["measure"]: r for r in records if r["bench"] == "gpu_prompt"}
    assert sorted(prompt) == ["memory", "memory_clip", "prompting", "raw_sam2"]
    clips = [r for r in records if r.get("measure") == "memory_clip"]
    assert [c["clip"] for c in clips] == ["short", "long"]
    assert prompt["raw_sam2"]["frames_per_s"] > 0 and prompt["raw_sam2"]["objects"] == 3
    assert prompt["prompting"]["objects"] == 3, "prompting must track the same objects as raw SAM2"
    assert prompt["prompting"]["ratio"] > 0 and prompt["prompting"]["device"] == "cpu"
    memory = prompt["memory"]
    assert memory["short"]["frames"] < memory["long"]["frames"]
    assert memory["long"]["cpu_rss_peak_mb"] >= memory["long"]["cpu_rss_start_mb"] > 0
    assert memory["long_over_short"]["cpu_rss_peak_mb"] > 0

    grpo = [r for r in records if r["bench"] == "gpu_grpo_step"]
    assert [r["step"] for r in grpo] == [1, 2]
    assert all(r["step_s"] > 0 and r["generation_tokens_per_s"] > 0 for r in grpo)
    assert all(r["step_s"] >= r["generate_s"] for r in grpo)  # the whole step contains its generation
    summary = next(r for r in records if r["bench"] == "gpu_grpo_step/summary")
    assert summary["loss_type"] == "grpo" and summary["beta"] == 0.04
