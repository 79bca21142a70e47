"""Runs tests/services/isolated_services.py inside a network namespace that holds only loopback.

`unshare --net` (root only) gives the inner pytest its own network stack with nothing but `lo`, so the
servers it starts cannot reach, or be reached from, anything outside, and their fixed ports clash with
nothing on the machine. The inner run's JUnit report must show every scenario passed (none skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KNOWN_XFAILS = 0  # strict xfails in isolated_services (defects known and named there)
INNER = HERE / "isolated_services.py"
TIMEOUT_S = 14400  # the scenarios take ~10 min on 2 idle cores; a machine shared by many jobs, hours


def _missing_tools() -> list[str]:
    from flows.services.postgres import DEFAULT_PG_BINS, PG_BIN_ENV_VAR

    pg_dirs = [os.environ.get(PG_BIN_ENV_VAR, ""), *DEFAULT_PG_BINS]
    missing = [tool for tool in ("unshare", "ip", "runuser") if not shutil.which(tool)]
    if not any(d and Path(d, "initdb").is_file() for d in pg_dirs) and not shutil.which("initdb"):
        missing.append("PostgreSQL 15 (initdb)")
    return missing


def test_team_services_in_a_loopback_only_network_namespace(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: `unshare --net` makes the loopback-only namespace (CI runs as root)")
    if missing := _missing_tools():
        pytest.skip(f"missing {', '.join(missing)} (.ci/run installs them)")
    report = tmp_path / "inner.xml"
    inner = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-s",
        f"--junitxml={report}",
        str(INNER),
    ]
    command = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        command,
        check=False,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    log = tmp_path / "inner.log"
    log.write_text(done.stdout + done.stderr)
    durations = done.stdout.find("slowest durations")
    print(
        f"inner run's output: {log}\n{done.stdout[durations - 40 :] if durations > 0 else done.stdout[-5000:]}"
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    # the one known defect is a strict xfail there (junit counts it as skipped; an unexpected pass fails)
    assert counts["tests"] >= 9 and counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == KNOWN_XFAILS, counts
