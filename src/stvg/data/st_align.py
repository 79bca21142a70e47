"""ST-Align (LLaVA-ST benchmark) adapter for the STVG task file ``stvg.json``.

Release format (REFERENCE Part 2 section 6): a list of ``{video_path, meta: {width, height,
split: [s0, s1], time_token: {"<s>": f, "<e>": f}, spatial_token: {"<bboxes>": {frame: [x, y, w, h]}}},
conversations}``. Frames are native 0-based indices; ``split`` is inclusive and becomes
``Sample.clip_frames``; the GT span is ``<s>..<e>`` inclusive; boxes are converted to xyxy (no +1).

The official protocol evaluates only the first 2,000 entries (``loaded_data[:2000]``):
``max_entries=ST_ALIGN_OFFICIAL_ENTRIES`` reproduces it (default: all entries). The release has no
separate query field: the sentence is taken from the human prompt (an explicit ``query``/``caption``
key wins when present; quoted text, then "can we see X occurring", then the prompt without its
instructions) [infer]. fps is not in the file (0 until the video is opened).
Sample ids: ``<video stem>_<entry index>``.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from stvg.data.common import LoadResult, Rejections, box_problem, expect_type, read_json
from stvg.records import Box, Sample

ST_ALIGN_OFFICIAL_ENTRIES = 2000  # LLaVA-ST inference/src/datasets.py evaluates loaded_data[:2000]
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]{3,})[\"\u201d]")
_SEE = re.compile(r"can we see (.+?) (?:occurring|happening|happen|occur)\b", re.IGNORECASE)
_MEDIA = re.compile(r"<(?:video|image)>")


def load_st_align(
    path: str | Path,
    *,
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    max_entries: int | None = None,
    split: str = "test",
    clip_boxes: bool = False,
) -> LoadResult:
    """Read ST-Align ``stvg.json``; ``max_entries=2000`` keeps the officially evaluated subset."""
    path = Path(path)
    entries = read_json(path)
    expect_type(path, entries, list, "a list of entries")
    if max_entries:
        entries = entries[:max_entries]
    rejections = Rejections(path, skip_invalid)
    root = Path(video_root) if video_root is not None else None
    samples: list[Sample] = []
    for idx, entry in enumerate(entries):
        video_path = entry.get("video_path") if isinstance(entry, dict) else None
        video_id = PurePosixPath(str(video_path)).stem if video_path else f"entry{idx}"
        sid = f"{video_id}_{idx}"
        problem, parsed = _parse(entry, clip_boxes)
        if problem:
            rejections.reject(sid, problem)
            continue
        video = str(video_path)
        if root is not None:
            found = next((p for p in (root / video, root / PurePosixPath(video).name) if p.is_file()), None)
            if found is None:
                rejections.reject(sid, f"video file not found: {root / video}; check data.video_root")
                continue
            video = str(found)
        samples.append(
            Sample(
                sample_id=sid,
                dataset="st-align",
                video=video,
                query=parsed["query"],
                fps=0.0,
                n_frames=0,
                width=parsed["width"],
                height=parsed["height"],
                video_id=video_id,
                gt_span_frames=parsed["span"],
                gt_boxes=parsed["boxes"],
                split=split,
                clip_frames=parsed["clip"],
            )
        )
    return rejections.result(samples)


def _parse(entry: Any, clip_boxes: bool) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict):
        return f"entry must be an object, got {type(entry).__name__}", {}
    meta = entry.get("meta")
    if not entry.get("video_path") or not isinstance(meta, dict):
        return "missing field(s) video_path/meta", {}
    try:
        width, height = int(meta["width"]), int(meta["height"])
        s0, s1 = (int(v) for v in meta["split"])
        start, end = int(meta["time_token"]["<s>"]), int(meta["time_token"]["<e>"])
        raw_boxes = meta["spatial_token"]["<bboxes>"]
        xywh = {int(f): [float(v) for v in b] for f, b in raw_boxes.items()}
    except (KeyError, TypeError, ValueError) as exc:
        return f"meta needs width, height, split, time_token <s>/<e> and spatial_token <bboxes> ({exc!r})", {}
    if s1 < s0:
        return f"end before start: split [{s0}, {s1}]", {}
    if end < start:
        return f"end before start: time_token <e> {end} < <s> {start}", {}
    if not (s0 <= start and end <= s1):
        return f"GT frames {start}..{end} lie outside the split [{s0}, {s1}]", {}
    boxes: dict[int, Box] = {}
    for frame in sorted(xywh):
        b = xywh[frame]
        if len(b) != 4:
            return f"box on frame {frame} must be [x, y, w, h], got {b}", {}
        x1, y1, x2, y2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
        if clip_boxes:
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        why = box_problem((x1, y1, x2, y2), width, height)
        if why:
            return f"{why} on frame {frame} (data.clip_boxes: true clips boxes to the frame)", {}
        boxes[frame] = (x1, y1, x2, y2)
    query = extract_query(entry)
    if not query:
        return "empty query: no human prompt in conversations", {}
    return "", {
        "width": width,
        "height": height,
        "span": (start, end),
        "clip": (s0, s1),
        "boxes": boxes,
        "query": query,
    }


def extract_query(entry: dict[str, Any]) -> str:
    """The grounded sentence of an entry (explicit key, else parsed from the human prompt)."""
    for key in ("query", "caption", "sentence"):
        if isinstance(entry.get(key), str) and entry[key].strip():
            return entry[key].strip()
    turns = entry.get("conversations") or []
    prompt = next((t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") == "human"), "")
    if not isinstance(prompt, str):
        return ""
    prompt = _MEDIA.sub(" ", prompt).strip()
    for pattern in (_QUOTED, _SEE):
        m = pattern.search(prompt)
        if m:
            return m.group(1).strip()
    return " ".join(s for s in re.split(r"(?<=[.?!])\s*", prompt) if s and not s.startswith("Please")).strip()
