"""Grounding latency on CPU: cold (`stvg ground`, process start to result) and warm (served, request
to response), on 8-s 320x240 synthetic videos, split into decode / prompt / policy / tube / render.

    .venv/bin/python benchmarks/bench_ground.py [--model models:/stvg-r1@champion] [--runs 3]

Needs a registered model (``make run``) or a model folder (``--model DIR``). Cold: ``stvg ground`` as a
fresh process per run, each on a video it has not prompted (``startup`` = wall time not spent in a
phase: interpreter, imports, model load); the first run, which also downloads the model version into
``.cache/models``, is reported apart. Warm: one ``stvg serve`` process, one request per video it has
not seen (``return_frames`` on, so the annotated mp4 is rendered and returned), then one more query
on an already prompted video. Goals on 2 cores: cold <= 20 s, warm <= 5 s. Run as root against the
local store, the whole benchmark runs in a loopback-only network namespace (``unshare --net``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("decode_s", "prompt_s", "policy_s", "tube_s", "render_s")
GOALS = {"cold_s": 20.0, "warm_s": 5.0}
ISOLATED = "STVG_BENCH_ISOLATED"


def videos(n: int, out: Path) -> list[tuple[Path, str]]:
    """The first ``n`` videos of the synthetic benchmark's val split as mp4, with their sentences."""
    from stvg.config import load_params
    from stvg.data.synthetic import build_video, write_mp4

    p = load_params(ROOT / "params.yaml").synthetic
    made = []
    for i in range(n):
        v = build_video(p, "val", i)
        write_mp4(out / v.name, v.frames, p.fps)
        made.append((out / v.name, v.sentence))
    return made


def cold_run(model: str, video: Path, query: str, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "ground",
        str(video),
        query,
        "--model",
        model,
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if not (out / "result.json").is_file():
        raise RuntimeError(f"stvg ground failed ({proc.returncode}): {proc.stderr[-2000:]}")
    timings = json.loads((out / "result.json").read_text())["timings"]
    phases = {k: timings.get(k, 0.0) for k in (*PHASES, "load_s")}
    return {"wall_s": round(wall, 3), **phases, "startup_s": round(wall - sum(phases.values()), 3)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ask(url: str, video: Path, query: str) -> dict[str, Any]:
    payload = {
        "dataframe_records": [{"video": base64.b64encode(video.read_bytes()).decode(), "query": query}],
        "params": {"return_frames": True},
    }
    request = urllib.request.Request(
        f"{url}/invocations", json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        row = json.loads(response.read())["predictions"][0]
    wall = time.perf_counter() - t0
    timings = json.loads(row["timings"])
    phases = {k: timings.get(k, 0.0) for k in PHASES}
    other = wall - sum(phases.values())  # HTTP, JSON, base64 both ways
    return {"wall_s": round(wall, 3), **phases, "transfer_s": round(other, 3), "ok": row["ok"]}


def warm_runs(model: str, clips: list[tuple[Path, str]], workdir: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "serve.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "stvg.cli",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
        "--poll-s",
        "3600",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 600:
                    raise RuntimeError((workdir / "serve.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        start = time.perf_counter() - t0
        runs = [ask(url, video, query) for video, query in clips]
        again = ask(url, clips[0][0], "another question about the same video")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    return {"server_start_s": round(start, 3), "runs": runs, "same_video_again": again}


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in runs[0] if k.endswith("_s")]
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models:/stvg-r1@champion")
    ap.add_argument("--runs", type=int, default=3, help="videos per measurement")
    args = ap.parse_args()
    remote = os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://"))
    if os.geteuid() == 0 and not remote and not os.environ.get(ISOLATED) and shutil.which("unshare"):
        inner = f"ip link set lo up && exec {shlex.join([sys.executable, *sys.argv])}"
        env = os.environ | {ISOLATED: "1"}
        return subprocess.run(["unshare", "--net", "sh", "-c", inner], check=False, env=env).returncode
    from stvg.env import configure_environment

    configure_environment(ROOT)
    work = Path(tempfile.mkdtemp(prefix="bench-ground-"))
    try:
        clips = videos(2 * args.runs + 1, work)
        first = cold_run(args.model, *clips[0], work / "first")
        cold = [
            cold_run(args.model, v, q, work / f"cold{i}") for i, (v, q) in enumerate(clips[1 : args.runs + 1])
        ]
        warm = warm_runs(args.model, clips[args.runs + 1 :], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "bench": "ground",
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {platform.python_version()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "video": "8 s, 320x240, 10 fps synthetic (val split), a different video per run",
        "cold_first_run": first,
        "cold": {"median": summarise(cold), "runs": cold},
        "warm": {"median": summarise(warm["runs"]), **warm},
        "goals": GOALS,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
