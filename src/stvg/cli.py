"""The library's commands: one per pipeline stage, plus data, scoring, params and weights tools.

    stvg download|base_model|detector|prompt|label|train|evaluate [stage args]   one stage (what dvc.yaml runs)
    stvg data stats FORMAT PATH                                counts of an annotation file, one JSON line;
                                                               each invalid entry named with its reason
    stvg score FORMAT SUBMISSION ANNOTATION [...]              official metrics of a submission file
    stvg params apply OVERRIDES.yaml                           switch params.yaml (e.g. to the paper set)
    stvg weights fetch NAME [--dest weights] [--sha256 HEX] [--from PATH] [--pin-in params.yaml]
                                                               fetch a real checkpoint (YOLO12-x, SAM2.1), or adopt a
                                                               local copy (--from), checksummed
    stvg ground VIDEO "QUERY" [--model URI] [--out DIR]        ground a sentence in a raw video (--batch FILE)
    stvg serve [--model models:/stvg-r1@champion]              serve the champion over HTTP, following the alias

The ``stvg`` console script is ``flows.cli`` (the composition root), which adds the orchestration
commands (``run``, ``promote``, ``lineage [--checkout DIR]``, ``retrain``, ``services``) and hands everything else to ``main`` here:
the library knows nothing of the flows (``python -m stvg.cli <stage>`` runs a stage without them).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from stvg.env import configure_environment

STAGES = ("download", "base_model", "detector", "prompt", "label", "train", "evaluate")
COMMANDS = (*STAGES, "score", "data", "params", "weights")  # what main() dispatches


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stvg`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    configure_environment()
    if command in STAGES:
        return call(f"stvg.stages.{command}", rest)
    if command == "score":
        return call("stvg.evaluation.score", rest)
    if command == "data":
        return _data(rest)
    if command == "params":
        return _params(rest)
    if command == "weights":
        return _weights(rest)
    print(f"stvg: unknown command {command!r}; see `stvg --help`", file=sys.stderr)
    return 2


def call(module: str, argv: list[str]) -> int:
    """``module.main(argv)``, with a bad params.yaml reported as one clear line (exit 2)."""
    from stvg.config import ParamsError

    try:
        result = importlib.import_module(module).main(argv)
    except ParamsError as exc:  # every stage: a bad params.yaml is one clear line, not a traceback
        print(f"stvg {module.rsplit('.', 1)[-1]}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


def _data(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "stats":
        print("usage: stvg data stats FORMAT PATH", file=sys.stderr)
        return 2
    from stvg.data.registry import FORMATS, dataset_stats

    fmt, path = argv[1], argv[2]
    if fmt not in FORMATS:
        print(f"stvg data stats: unknown FORMAT {fmt!r}; use one of {' '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        stats = dataset_stats(fmt, path)
    except (OSError, ValueError) as exc:
        print(f"stvg data stats: {exc}", file=sys.stderr)
        return 1
    for bad in stats["invalid_entries"]:  # also in the JSON line; here for a reader of the terminal
        print(
            f"stvg data stats: {path}: invalid entry {bad['sample_id']!r}: {bad['reason']}", file=sys.stderr
        )
    print(json.dumps(stats, sort_keys=True))
    return 0


def _params(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] != "apply":
        print("usage: stvg params apply OVERRIDES.yaml [PARAMS.yaml]", file=sys.stderr)
        return 2
    from stvg.config import ParamsError, apply_overrides

    target = argv[2] if len(argv) == 3 else "params.yaml"
    try:
        changed = apply_overrides(target, argv[1])
    except (OSError, ParamsError) as exc:
        print(f"stvg params apply: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"params": target, "changed": changed}))
    return 0


def _weights(argv: list[str]) -> int:
    import argparse

    from stvg.prompting.weights import PIN_SUFFIX, REGISTRY, adopt_weights, fetch_weights

    ap = argparse.ArgumentParser(prog="stvg weights fetch", description="Fetch a real checkpoint explicitly.")
    ap.add_argument("action", choices=["fetch"])
    ap.add_argument("name", choices=sorted(REGISTRY))
    ap.add_argument("--dest", default="weights", help="folder for the checkpoint (default: weights/)")
    ap.add_argument("--sha256", default="", help="expected SHA-256 (pins the download or the adopted file)")
    ap.add_argument("--from", dest="source", default="", help="adopt this local file instead of downloading")
    ap.add_argument(
        "--pin-in",
        default="",
        metavar="PARAMS",
        help="write the file's path and sha256 into this params file (a YOLO checkpoint: detector.weights*)",
    )
    args = ap.parse_args(argv)
    pin = PINNED_IN_PARAMS.get(REGISTRY[args.name].kind)
    refusal = _pin_in_refusal(args.pin_in, REGISTRY[args.name].kind, pin) if args.pin_in else ""
    if refusal:  # before anything is fetched
        print(f"stvg weights fetch: {refusal}", file=sys.stderr)
        return 2
    try:
        if args.source:
            path, digest = adopt_weights(args.name, args.source, args.dest, pin=args.sha256)
        else:
            path = fetch_weights(args.name, args.dest, pin=args.sha256)
            digest = path.with_name(path.name + PIN_SUFFIX).read_text(encoding="utf-8").split()[0]
        pinned = _pin_in_params(args.pin_in, path, digest) if args.pin_in else []
    except (OSError, ValueError) as exc:
        print(f"stvg weights fetch: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"name": args.name, "path": str(path), "sha256": digest, "pin_in_params": pin, "pinned": pinned}
        )
    )
    return 0


# The params key that pins a checkpoint of each kind (SAM2 checkpoints are not pinned in params).
PINNED_IN_PARAMS = {"yolo": "detector.weights_sha256"}


def _pin_in_refusal(params_path: str, kind: str, pin: str | None) -> str:
    """Why ``--pin-in params_path`` cannot be honoured for a checkpoint of ``kind`` ("" when it can)."""
    if pin is None:
        return f"--pin-in: only a detector (YOLO) checkpoint is pinned in params, not a {kind} one; nothing fetched"
    if not Path(params_path).is_file():
        return f"--pin-in: {params_path} is not a params file; give the path of params.yaml; nothing fetched"
    return ""


def _pin_in_params(params_path: str, path: Path, digest: str) -> list[str]:
    """Write a fetched detector checkpoint's path and sha256 into ``params_path`` (no hand edit).

    Trust on first use: the pin is the sha256 of the file just fetched or adopted (no upstream
    project publishes one); from then on every run verifies the file against it.
    """
    from stvg.config import ParamsError, merge_into_params

    try:
        return merge_into_params(params_path, {"detector": {"weights": str(path), "weights_sha256": digest}})
    except ParamsError as exc:
        raise ValueError(f"--pin-in {params_path}: {exc}") from exc


if __name__ == "__main__":
    raise SystemExit(main())
