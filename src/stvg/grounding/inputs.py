"""What a caller may send as a video and a query, and the checks every request passes first.

A video is a local path, a ``file://`` URI, raw bytes, or those bytes base64-encoded (optionally as a
``data:video/mp4;base64,`` URI): the last is what an HTTP client sends. Bytes are written to a
temporary file that ``resolved_video`` removes again. A path must name a readable file and, when the
caller fixes a ``root`` (a server), lie inside it, so a client cannot make a server read its other
files; a server without a root accepts bytes only. Every problem is a ``GroundingInputError`` whose
message names the field, the cause and the fix; nothing is decoded before these checks pass.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_PATH_CHARS = 4096  # longer strings are never paths: they can only be base64 bytes
_DATA_URI_MARK = ";base64,"


class GroundingInputError(ValueError):
    """A request the model cannot answer as sent (not a video, empty query, too long, bad option)."""


def check_query(query: object) -> str:
    """The query as a non-empty string."""
    if not isinstance(query, str) or not query.strip():
        raise GroundingInputError(
            f"query is empty ({query!r}); send the sentence describing the object and the moment, "
            'e.g. "the red square that stops"'
        )
    return query.strip()


def check_duration(duration_s: float, max_video_s: float, name: str) -> None:
    """Refuse a video longer than the configured limit (``ground.max_video_s``)."""
    if duration_s > max_video_s:
        raise GroundingInputError(
            f"video {name} lasts {duration_s:.1f} s, over this model's limit of {max_video_s:.1f} s "
            "(ground.max_video_s); cut the video, or raise the limit where the model is served"
        )


def describe(video: object, limit: int = 120) -> str:
    """A short printable name of a video argument (never the whole base64 text)."""
    if isinstance(video, bytes | bytearray):
        return f"<uploaded video, {len(video)} bytes>"
    text = str(video)
    if len(text) <= limit and not text.startswith("data:"):
        return text
    return f"<uploaded video, ~{len(text) * 3 // 4} bytes as base64>"


@contextlib.contextmanager
def resolved_video(
    video: str | bytes | os.PathLike[str], workdir: Path, root: Path | None = None, allow_paths: bool = True
) -> Iterator[Path]:
    """A local file holding the video; temporary files made from bytes are removed on exit."""
    if isinstance(video, os.PathLike):
        video = os.fspath(video)
    if isinstance(video, bytes | bytearray):
        data = bytes(video)
    elif isinstance(video, str) and video.strip():
        path = _as_path(video.strip(), root, allow_paths)
        if path is not None:
            yield path
            return
        data = _decode_base64(video, allow_paths)
    else:
        raise GroundingInputError(
            f"video is empty or of type {type(video).__name__}; send a file path or the video's bytes "
            "(base64-encoded over HTTP)"
        )
    if not data:
        raise GroundingInputError("video holds 0 bytes; send the whole video file")
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f"upload-{hashlib.sha256(data).hexdigest()[:12]}-", suffix=".mp4", dir=workdir
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _as_path(text: str, root: Path | None, allow_paths: bool) -> Path | None:
    """The file ``text`` names, or None when it is not a path (then it must be base64)."""
    if text.startswith("data:") or len(text) > MAX_PATH_CHARS:
        return None
    is_uri = text.startswith("file://")
    candidate = Path(unquote(urlparse(text).path)) if is_uri else Path(text).expanduser()
    if not (is_uri or candidate.is_file()):
        return None
    if not allow_paths:
        raise GroundingInputError(
            f"video {describe(text)} is a path, and this server reads no paths; send the video's bytes "
            "base64-encoded, or start the server with a video root that holds the file"
        )
    if not candidate.is_file():
        raise GroundingInputError(f"video {text} is not a readable file; check the path")
    resolved = candidate.resolve()
    if root is not None and not resolved.is_relative_to(Path(root).resolve()):
        raise GroundingInputError(
            f"video {text} lies outside the folder this server may read ({root}); "
            "send the video's bytes base64-encoded instead"
        )
    return resolved


def _decode_base64(text: str, allow_paths: bool) -> bytes:
    body = text.split(_DATA_URI_MARK, 1)[1] if text.startswith("data:") and _DATA_URI_MARK in text else text
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        what = (
            "an existing file or base64-encoded video bytes" if allow_paths else "base64-encoded video bytes"
        )
        raise GroundingInputError(
            f"video {describe(text)} is not {what} ({exc}); check the path or the encoding"
        ) from exc
