"""``stvg ground``: where and when is the object a sentence describes, in a raw video — from the CLI.

    stvg ground VIDEO "QUERY" [--model models:/stvg-r1@champion] [--out DIR]
    stvg ground --batch queries.jsonl [--model ...] [--out DIR] [--render]

One video: prompts it (progress bar), asks the policy, maps the answered ID to its box tube and writes
``DIR/result.json`` (``stvg.grounding.result``), ``DIR/annotated.mp4`` (the raw video with the answered
tube's box and the time span drawn, the other IDs faint) and ``DIR/maskdb/`` (the prompted video's
mask-database entry: every tracked instance), then prints one line: ``ID 2, 5.00–11.00 s, 120
frames, result in DIR``. Exit 0 when the answer names an instance, 1 when it does not, 2 on bad input.

A batch (one ``{"video": PATH, "query": TEXT}`` per line) writes ``DIR/results.jsonl`` as it goes,
lists failures (``failures.jsonl``) without stopping, and skips items already answered when re-run
(``stvg.grounding.batch``). Exit 1 when any item failed.

``--model`` is a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``) on
``MLFLOW_TRACKING_URI`` or the project's local store — downloaded once into ``.cache/models/`` — or a
local model folder. This module is the registry glue; everything else is ``stvg.grounding``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from stvg.env import configure_environment

log = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/stvg-r1@champion"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stvg ground", description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="the video file (mp4, avi, ... anything OpenCV decodes)")
    parser.add_argument("query", nargs="?", help='the sentence, e.g. "the red square that stops"')
    parser.add_argument("--batch", type=Path, help="a JSON-lines file of {video, query} instead of one video")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"registry URI or model folder ({DEFAULT_MODEL})"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: ground/<video or batch name>)")
    parser.add_argument("--render", action="store_true", help="batch: also write each item's annotated mp4")
    parser.add_argument("--device", default="", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--max-new-tokens", type=int, help="answer length cap (default: the model's)")
    parser.add_argument("--do-sample", action="store_true", default=None, help="sample instead of greedy")
    parser.add_argument("--temperature", type=float, help="sampling temperature (with --do-sample)")
    parser.add_argument("--seed", type=int, help="generation seed (default: the model's)")
    args = parser.parse_args(argv)
    if (args.batch is None) == (args.video is None):
        parser.error('give VIDEO "QUERY", or --batch FILE (not both)')
    if args.batch is None and args.query is None:
        parser.error('give the QUERY after VIDEO, e.g. stvg ground clip.mp4 "the red square that stops"')
    return args


def load_grounder(model: str, root: Path, cache_dir: Path, device: str = "") -> Any:
    """A ``Grounder`` over the model at ``model`` (URI or folder); raises with a message on failure."""
    from mlflow import MlflowClient

    from flows.serving import fetch_model, require_registry
    from flows.tracking import tracking_uri
    from stvg.grounding.bundle import load_bundle
    from stvg.grounding.grounder import Grounder

    client = None
    if not Path(model).expanduser().is_dir():
        require_registry(tracking_uri(root))  # before a client, which would create an empty store
        client = MlflowClient(tracking_uri=tracking_uri(root))
    local = fetch_model(model, root / ".cache" / "models", client)
    info = {"uri": model, "name": local.name, "version": local.version}
    return Grounder(load_bundle(local.bundle_dir), cache_dir, device=device or None, model_info=info)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = configure_environment()
    name = args.batch.stem if args.batch is not None else Path(args.video).stem
    out = args.out or Path("ground") / name
    try:
        t0 = time.perf_counter()
        grounder = load_grounder(args.model, root, out / "maskdb", args.device)
        grounder.load()
        load_s = time.perf_counter() - t0
        overrides = {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample}
        options = grounder.options(**overrides, temperature=args.temperature, seed=args.seed)
    except Exception as exc:  # noqa: BLE001 - a model that cannot load is one clear line, not a traceback
        print(f"stvg ground: cannot load the model {args.model}: {exc}", file=sys.stderr)
        return 2
    if args.batch is not None:
        return _batch(grounder, args.batch, out, options, args.render)
    return _single(grounder, Path(args.video), args.query, out, options, load_s)


def _single(grounder: Any, video: Path, query: str, out: Path, options: Any, load_s: float) -> int:
    from tqdm import tqdm

    from stvg.grounding.inputs import GroundingInputError
    from stvg.io import write_json_atomic

    if not video.is_file():
        print(f"stvg ground: video {video} not found; check the path", file=sys.stderr)
        return 2
    bar = tqdm(desc="prompt", unit="frame", leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = grounder.ground(video, query, options, name=str(video), progress=progress)
    except GroundingInputError as exc:
        print(f"stvg ground: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    render_s = grounder.render(video, result, out / "annotated.mp4")
    record = result.to_dict()
    record["timings"].update(load_s=round(load_s, 4), render_s=round(render_s, 4))
    write_json_atomic(out / "result.json", record)
    print(result.summary_line(str(out)))
    return 0 if result.ok else 1


def _batch(grounder: Any, queries: Path, out: Path, options: Any, render: bool) -> int:
    from stvg.grounding.batch import run_batch

    if not queries.is_file():
        print(f"stvg ground: batch file {queries} not found", file=sys.stderr)
        return 2
    summary = run_batch(grounder, queries, out, options, render=render)
    print(
        f"batch: {summary['answered']} answered, {summary['skipped']} already done, "
        f"{summary['failed']} failed of {summary['items']} items; results in {out / 'results.jsonl'}"
    )
    for failure in summary["failures"]:
        print(f"  line {failure['line']}: {failure['error']}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
