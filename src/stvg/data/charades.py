"""Charades-STA adapter: the original TALL text lines and the TimeZero/Time-R1 JSON form.

Text form (``charades_sta_{train,test}.txt``): ``VID start end##sentence.`` per line, with durations
from the Charades ``Charades_v1_{train,test}.csv`` (``id``, ..., ``length``) found beside it or passed
as ``durations``. JSON form: ``{vid: {duration, timestamps: [[s, e], ...], sentences: [...]}}``.

Canonical handling (2D-TAN loader): the end is clipped to the video duration and a query whose
start is then >= the end is dropped; such drops are the protocol, so they are listed in
``LoadResult.invalid`` without raising. An end before the start *as written* is bad input (raises
unless ``skip_invalid``). The sentence is kept as written (both forms agree; the TALL loaders strip
the final period, the policy prompt strips it anyway). fps and frame count are unknown until the
video is opened: ``fps = n_frames = 0`` and ``Sample.stated_duration_s`` carries the duration.
Sample ids: ``<vid>_<k>``, k counting that video's queries in file order.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from stvg.data.common import LoadResult, Rejections, expect_type, is_number, read_bytes, read_json
from stvg.data.errors import AnnotationError
from stvg.records import Sample


def load_charades(
    path: str | Path,
    *,
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    durations: str | Path | None = None,
    split: str | None = None,
) -> LoadResult:
    """Read Charades-STA queries from the ``.txt`` release or the TimeZero ``.json`` form."""
    path = Path(path)
    split = split if split is not None else _split_of(path)
    rejections = Rejections(path, skip_invalid)
    if path.suffix.lower() == ".json":
        rows = _json_rows(path, rejections)
        if durations is not None:
            lengths = read_durations(durations)
            rows = [(vid, lengths.get(vid, dur), s, e, q) for vid, dur, s, e, q in rows]
    else:
        csv_path = durations if durations is not None else _durations_beside(path, split)
        lengths = read_durations(csv_path) if csv_path is not None else {}
        rows = _text_rows(path, lengths)

    samples: list[Sample] = []
    seen: dict[str, int] = {}
    root = Path(video_root) if video_root is not None else None
    for vid, duration, start, end, query in rows:
        if isinstance(duration, str):  # an unparsable text line: vid is "line<n>", duration the reason
            rejections.reject(vid, duration)
            continue
        k = seen[vid] = seen.get(vid, -1) + 1
        sid = f"{vid}_{k}"
        problem = _span_problem(start, end, query)
        if problem:
            rejections.reject(sid, problem)
            continue
        if duration > 0 and end > duration:
            end = duration  # clip to the video (canonical)
            if start >= end:
                rejections.drop(
                    sid, f"start {start} s is not before the clipped end {end} s (video duration)"
                )
                continue
        video = f"{vid}.mp4"
        if root is not None:
            if not (root / video).is_file():
                rejections.reject(sid, f"video file not found: {root / video}; check data.video_root")
                continue
            video = str(root / video)
        samples.append(
            Sample(
                sample_id=sid,
                dataset="charades-sta",
                video=video,
                query=query,
                fps=0.0,
                n_frames=0,
                width=0,
                height=0,
                video_id=vid,
                gt_span_s=(float(start), float(end)),
                split=split,
                stated_duration_s=float(duration) if duration > 0 else 0.0,
            )
        )
    return rejections.result(samples)


Row = tuple[
    str, float | str, Any, Any, str
]  # vid, duration (0 = unknown; str = why unparsable), start, end, text


def _json_rows(path: Path, rejections: Rejections) -> list[Row]:
    obj = read_json(path)
    expect_type(path, obj, dict, "an object {vid: {duration, timestamps, sentences}}")
    rows: list[Row] = []
    for vid, entry in obj.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("timestamps"), list):
            rejections.reject(vid, "entry needs duration, timestamps and sentences")
            continue
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or len(sentences) != len(entry["timestamps"]):
            rejections.reject(vid, "sentences must be a list as long as timestamps")
            continue
        duration = entry.get("duration")
        duration = float(duration) if is_number(duration) and duration > 0 else 0.0
        for span, sentence in zip(entry["timestamps"], sentences):
            start, end = span if isinstance(span, list) and len(span) == 2 else (None, None)
            rows.append((vid, duration, start, end, sentence if isinstance(sentence, str) else ""))
    return rows


def _text_rows(path: Path, lengths: dict[str, float]) -> list[Row]:
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(str(path), f"not UTF-8 text ({exc})") from exc
    rows: list[Row] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        fields = head.split()
        if not sep or len(fields) != 3:
            rows.append((f"line{n}", f"line {n} is not 'VID start end##sentence': {line[:80]!r}", 0, 0, ""))
            continue
        vid, start, end = fields
        try:
            rows.append((vid, lengths.get(vid, 0.0), float(start), float(end), sentence.strip()))
        except ValueError:
            rows.append((f"line{n}", f"line {n}: start/end must be seconds, got {start!r} {end!r}", 0, 0, ""))
    return rows


def _span_problem(start: Any, end: Any, query: str) -> str:
    if not (is_number(start) and is_number(end)):
        return f"timestamps must be [start, end] seconds, got {[start, end]!r}"
    if start < 0:
        return f"start {start} s is negative"
    if end <= start:
        return f"end before start: end {end} s <= start {start} s"
    if not query.strip():
        return "empty query sentence"
    return ""


def read_durations(path: str | Path) -> dict[str, float]:
    """``{id: length}`` from a Charades ``Charades_v1_*.csv``."""
    try:
        text = read_bytes(path).decode("utf-8")
        rows = list(csv.DictReader(text.splitlines()))
        return {r["id"]: float(r["length"]) for r in rows if r.get("id") and r.get("length")}
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise AnnotationError(
            str(path), f"durations CSV needs 'id' and numeric 'length' columns ({exc!r})"
        ) from exc


def _split_of(path: Path) -> str:
    stem = path.stem.lower()
    for split in ("train", "test", "val"):
        if split in stem:
            return split
    return stem


def _durations_beside(path: Path, split: str) -> Path | None:
    candidate = path.with_name(f"Charades_v1_{split}.csv")
    return candidate if candidate.is_file() else None
