"""Helpers shared by the adapters: strict JSON reading, the skip-or-raise policy, video lookup, splits."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.data.errors import AnnotationError, InvalidSample
from stvg.records import Sample


@dataclass
class LoadResult:
    """What an adapter read: the usable samples, and the ones it dropped with the reason."""

    samples: list[Sample] = field(default_factory=list)
    invalid: list[InvalidSample] = field(default_factory=list)


class Rejections:
    """Applies ``skip_invalid``: a bad sample raises ``AnnotationError``, or is recorded and skipped."""

    def __init__(self, file: str | Path, skip_invalid: bool) -> None:
        self.file = str(file)
        self.skip_invalid = skip_invalid
        self.invalid: list[InvalidSample] = []

    def reject(self, sample_id: str, reason: str) -> None:
        """Raise for ``sample_id``, or record it when invalid samples are skipped."""
        if not self.skip_invalid:
            raise AnnotationError(self.file, reason, sample_id=sample_id)
        self.invalid.append(InvalidSample(self.file, sample_id, reason))

    def drop(self, sample_id: str, reason: str) -> None:
        """Record a sample the data set's own protocol drops (never an error)."""
        self.invalid.append(InvalidSample(self.file, sample_id, reason, protocol=True))

    def result(self, samples: list[Sample]) -> LoadResult:
        return LoadResult(samples, list(self.invalid))


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; a missing or unreadable file is an ``AnnotationError`` naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AnnotationError(
            str(path), f"cannot read the file ({exc.strerror or exc})", fix="check the path"
        ) from exc


def parse_json(path: str | Path, raw: bytes) -> Any:
    """Decode JSON; malformed content is an ``AnnotationError`` naming the file and the position."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(
            str(path), f"not valid JSON ({exc})", fix="re-download or repair the file"
        ) from exc


def read_json(path: str | Path) -> Any:
    """Read and decode a JSON annotation file."""
    return parse_json(path, read_bytes(path))


def expect_type(path: str | Path, obj: Any, kind: type, what: str) -> None:
    """Raise an ``AnnotationError`` naming the file when the top level is not ``kind``."""
    if not isinstance(obj, kind):
        raise AnnotationError(
            str(path),
            f"top level must be {what}, got {type(obj).__name__}",
            fix="is this the right file and FORMAT?",
        )


def split_name(path: str | Path, *suffixes: str) -> str:
    """The split named by an annotation file: ``val_v2.json`` -> ``val``, ``val_annotations.json`` -> ``val``."""
    stem = Path(path).stem
    for suffix in suffixes:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def is_number(value: Any) -> bool:
    """A finite int or float (bools excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def missing_keys(entry: dict[str, Any], keys: Iterable[str]) -> list[str]:
    return [k for k in keys if k not in entry]


def box_problem(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """Why an xyxy box is unusable in a ``width`` x ``height`` frame, or "" when it is fine."""
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        return f"degenerate box {list(box)} (needs x1 < x2 and y1 < y2)"
    if width > 0 and height > 0 and (x1 < 0 or y1 < 0 or x2 > width or y2 > height):
        return f"box {list(box)} lies outside the {width}x{height} frame"
    return ""


class VideoIndex:
    """Finds video files under a root: directly, or one sub-folder down (HC-STVG v2 ``video_parts/<0..9>``).

    The root is listed once, so resolving thousands of names costs one directory scan.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._nested: dict[str, Path] | None = None

    def find(self, name: str, *, nested: bool = True) -> Path | None:
        direct = self.root / name
        if direct.exists():
            return direct
        if not nested:
            return None
        if self._nested is None:
            self._nested = {}
            if self.root.is_dir():
                for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
                    with os.scandir(sub) as it:
                        for entry in it:
                            self._nested.setdefault(entry.name, Path(entry.path))
        return self._nested.get(Path(name).name)

    def missing_reason(self, name: str, nested: bool = True) -> str:
        where = f"{self.root}/{name}" + (f" or {self.root}/*/{Path(name).name}" if nested else "")
        return f"video file not found (looked for {where}); check data.video_root"
