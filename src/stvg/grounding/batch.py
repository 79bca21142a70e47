"""Many grounding requests from a JSON-lines file: each failure isolated and listed, resumable.

Each line is ``{"video": PATH, "query": TEXT}`` with an optional ``"id"``; relative paths resolve
against the file's folder. ``results.jsonl`` gets one line per answered item, appended and flushed as
soon as it is answered, so a killed run keeps what it finished; a re-run skips the items already
there (matched by ``id``, else by video path and query) and retries the failed ones.
``failures.jsonl`` lists this run's failures (line, item, reason) and ``summary.json`` counts them. A
malformed line, a missing or corrupt video, an empty query: each is one failure, and the batch goes
on. The videos share one mask database under the output folder, so many queries on one video prompt
it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.grounding.grounder import Grounder, GroundOptions
from stvg.io import write_json_atomic, write_jsonl_atomic

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class BatchItem:
    """One request line."""

    line: int  # 1-based line number in the queries file
    key: str  # the item's id: given, or a hash of video path and query
    video: Path
    query: str


def item_key(record: dict[str, Any]) -> str:
    """The id a result line is matched by on a re-run."""
    if record.get("id") not in (None, ""):
        return str(record["id"])
    canonical = json.dumps([str(record.get("video")), str(record.get("query"))])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_items(path: Path) -> tuple[list[BatchItem], list[dict[str, Any]]]:
    """The well-formed items of a queries file, and one failure per malformed line."""
    items: list[BatchItem] = []
    failures: list[dict[str, Any]] = []
    for n, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            failures.append({"line": n, "error": f"{path}:{n}: not a JSON line ({exc})"})
            continue
        if not isinstance(record, dict) or not isinstance(record.get("video"), str):
            failures.append(
                {
                    "line": n,
                    "error": f'{path}:{n}: expected {{"video": PATH, "query": SENTENCE}}, got {text[:80]}',
                }
            )
            continue
        video = Path(record["video"]).expanduser()
        video = video if video.is_absolute() else Path(path).parent / video
        items.append(BatchItem(line=n, key=item_key(record), video=video, query=str(record.get("query", ""))))
    return items, failures


def done_keys(results: Path) -> set[str]:
    """Ids already answered; a line cut off by a kill is dropped (the file is rewritten without it)."""
    if not results.is_file():
        return set()
    rows, dropped = [], 0
    for text in results.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(text))
        except ValueError:
            dropped += 1
    if dropped:
        log.warning("%s: %d unreadable line(s) dropped (a run was killed mid-write)", results, dropped)
        write_jsonl_atomic(results, rows)
    return {str(r["id"]) for r in rows if "id" in r}


def run_batch(
    grounder: Grounder,
    queries: Path,
    out: Path,
    options: GroundOptions,
    *,
    render: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Answer every item of ``queries`` not yet in ``out/results.jsonl``; returns the summary."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    items, failures = read_items(queries)
    done = done_keys(out / RESULTS)
    todo = [it for it in items if it.key not in done]
    answered = 0
    with open(out / RESULTS, "a", encoding="utf-8") as sink:
        for item in tqdm(todo, desc="ground", unit="query", disable=not progress):
            try:
                record = _answer(grounder, item, out, options, render)
            except Exception as exc:  # noqa: BLE001 - isolate the item; failures.jsonl names it and why
                log.warning("line %d (%s) failed: %s", item.line, item.video, exc)
                failures.append(_failure(item, exc))
                continue
            _append(sink, record)
            answered += 1
    failures.sort(key=lambda f: f["line"])
    write_jsonl_atomic(out / FAILURES, failures)
    summary = {
        "items": len(items) + sum(1 for f in failures if "id" not in f),
        "answered": answered,
        "skipped": len(items) - len(todo),
        "failed": len(failures),
        "failures": failures,
    }
    write_json_atomic(out / SUMMARY, summary)
    return summary


def _answer(
    grounder: Grounder, item: BatchItem, out: Path, options: GroundOptions, render: bool
) -> dict[str, Any]:
    if not item.video.is_file():
        raise FileNotFoundError(
            f"video {item.video} not found; check the path (relative to the queries file)"
        )
    result = grounder.ground(item.video, item.query, options, name=str(item.video), progress=None)
    record = {"id": item.key, "line": item.line, **result.to_dict()}
    if render:
        mp4 = out / "annotated" / f"{item.key}.mp4"
        record["timings"]["render_s"] = round(grounder.render(item.video, result, mp4), 4)
        record["annotated"] = str(mp4.relative_to(out))
    return record


def _failure(item: BatchItem, exc: Exception) -> dict[str, Any]:
    return {
        "line": item.line,
        "id": item.key,
        "video": str(item.video),
        "query": item.query,
        "error": f"{type(exc).__name__}: {exc}",
    }


def _append(sink: Any, record: dict[str, Any]) -> None:
    sink.write(json.dumps(record, sort_keys=True) + "\n")
    sink.flush()
    os.fsync(sink.fileno())


def iter_results(out: Path) -> Iterator[dict[str, Any]]:
    """The answered items of a batch folder."""
    path = out / RESULTS
    if path.is_file():
        for text in path.read_text(encoding="utf-8").splitlines():
            yield json.loads(text)
