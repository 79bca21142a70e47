"""``stvg services up|down|status [--dir DIR] [--json]`` (``make services`` = ``up``).

``up`` starts PostgreSQL, the object store, the MLflow server and the Prefect server on 127.0.0.1
(only those not already running and healthy), writes ``.services/env`` and points this checkout's DVC
remote at the store. ``down`` stops what ``up`` started, by PID. ``status`` shows each service's PID,
health, URL and log. The folder is ``<repo>/.services`` unless ``--dir`` or ``STVG_SERVICES_DIR`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.services import manager
from flows.services.procs import ServiceError
from stvg.env import configure_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stvg services", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", default="", help="services folder (default: <repo>/.services)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    root = configure_environment()
    folder = Path(args.dir) if args.dir else manager.default_dir(root)
    try:
        if args.action == "up":
            states = manager.up(folder, repo=root)
        elif args.action == "down":
            states = manager.down(folder)
        else:
            states = manager.status(folder)
    except (ServiceError, ValueError) as exc:
        print(f"stvg services {args.action}: {exc}", file=sys.stderr)
        if args.action == "up":
            print(
                "what did start keeps running: `stvg services status`, `stvg services down`", file=sys.stderr
            )
        return 1
    if args.json:
        print(json.dumps({"dir": str(folder), "services": manager.as_dicts(states)}, sort_keys=True))
    else:
        print(_table(folder, states, args.action))
    unhealthy = args.action != "down" and (not states or not all(s.healthy for s in states))
    return 1 if unhealthy and args.action == "up" else (3 if unhealthy else 0)


def _table(folder: Path, states: list[manager.ServiceState], action: str) -> str:
    if not states:
        return f"no services in {folder} (`stvg services up` starts them)"
    lines = [f"{'service':<9} {'pid':>8}  {'state':<12} {'url':<28} log"]
    for s in states:
        state = s.action or ("healthy" if s.healthy else ("unhealthy" if s.pid else "stopped"))
        lines.append(f"{s.name:<9} {s.pid or '-':>8}  {state:<12} {s.url:<28} {s.log}")
    if action == "up":
        lines += ["", f"clients' settings: {folder / 'env'} (loaded by make run, stvg and the flows)"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
