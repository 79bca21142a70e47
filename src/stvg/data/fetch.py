"""Getting release files onto disk safely: resumable HTTP download, checksum, safe extraction, local copy.

- ``download`` streams to ``<dest>.part`` and renames into place only when the size (Content-Length)
  and SHA-256 check out. A ``.part`` left by a broken transfer is resumed with an HTTP ``Range``
  request; a server that ignores ``Range`` (200 instead of 206) restarts the file from byte 0.
- ``extract_archive`` refuses absolute paths, ``..`` components, links of any kind and device files
  *before* writing anything, then extracts into a temporary sibling that is renamed into place
  (``stvg.io.atomic_dir``), so a rejected or broken archive leaves nothing at the destination. Links are
  refused rather than judged: whether a link target stays inside the tree depends on the links created
  before it (a chain ``l0 -> .``, ``l1 -> l0/..``, ... climbs out while each target looks harmless on its
  own), so an archive that needs links is extracted by hand and registered as a ``local`` source.
- ``register_local`` copies a file or folder the user already has. It copies rather than symlinks or
  hardlinks on purpose: ``dvc add`` moves workspace files into its cache and makes them read-only,
  which through a hardlink would change the user's original file, and DVC does not follow symlinks
  out of the tracked folder.

Retrying is the caller's job (the download flow uses Prefect task retries); ``DownloadError.retryable``
says whether a retry can help.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from stvg.io import atomic_dir

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A transfer failed; ``retryable`` is False when repeating the same request cannot help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256 (the partial file has been removed)."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; the download was "
            "removed. Check the URL and the sha256 in params.yaml (download.sources)",
            retryable=False,  # the server sent these bytes; asking again gets the same ones
        )
        self.url, self.expected, self.actual = url, expected, actual


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination or is not a regular file or folder."""


# ----------------------------------------------------------------------------------------------- download


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str = "",
    timeout_s: float = 60.0,
    chunk_bytes: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with resume and verification; returns ``dest``.

    An existing ``dest`` is kept when it matches ``sha256`` (or when no checksum is given). A
    truncated transfer raises ``DownloadError`` and keeps ``dest.part`` for the next call to resume;
    a checksum mismatch raises ``ChecksumError`` and removes the partial file.
    """
    dest = Path(dest)
    sha256 = sha256.lower()
    if dest.is_file():
        if not sha256:
            log.info("%s already present (no sha256 configured: not re-verified)", dest)
            return dest
        if sha256_file(dest, chunk_bytes) == sha256:
            log.info("%s already present and verified", dest)
            return dest
        log.warning("%s exists but its sha256 differs from the expected one: downloading again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0

    response = _open(url, offset, timeout_s)
    start = _resume_point(url, response, offset)
    if start is None:  # the server cannot continue this .part: start over once, from byte 0
        response.close()
        part.unlink(missing_ok=True)
        offset = 0
        response = _open(url, offset, timeout_s)
        start = _resume_point(url, response, offset)
    assert start is not None  # a request from byte 0 always has a start point
    offset, total = start
    with response:
        if total is not None and offset == total:  # the .part already holds every byte
            written = 0
        else:
            written = _stream(url, response, part, offset, total, chunk_bytes, progress)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"transfer of {url} was truncated at {size} of {total} bytes; {part} is kept and the next "
            "attempt resumes from it"
        )
    if sha256:
        actual = sha256_file(part, chunk_bytes)
        if actual != sha256:
            part.unlink()
            raise ChecksumError(url, sha256, actual)
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes, %d this attempt)", url, dest, size, written)
    return dest


def _open(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": "stvg-download", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # Range past the end: the .part may already be complete
            return exc  # type: ignore[return-value]  # HTTPError is a response object too
        retryable = exc.code >= 500 or exc.code in (408, 429)
        raise DownloadError(f"GET {url} failed: HTTP {exc.code} {exc.reason}", retryable=retryable) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"GET {url} failed: {exc}") from exc


def _resume_point(url: str, response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None] | None:
    """Where writing starts and the full size, from the server's answer; None = restart from 0."""
    status = response.status
    if status == 416:  # Range past the end: complete only if the server's size equals the .part's
        match = re.fullmatch(r"bytes\s+\*/(\d+)", response.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            return offset, offset
        log.warning("server cannot resume %s at byte %d: restarting from 0", url, offset)
        return None
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match.group(1)) != offset:
            log.warning("partial answer for %s does not start at byte %d: restarting from 0", url, offset)
            return None
        return offset, None if match.group(3) == "*" else int(match.group(3))
    if offset:
        log.info("server ignored the Range request for %s: downloading from byte 0", url)
    length = response.headers.get("Content-Length")
    return 0, int(length) if length is not None else None


def _stream(
    url: str,
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    chunk_bytes: int,
    progress: bool,
) -> int:
    from tqdm import tqdm

    written = 0
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        desc=posixpath.basename(url) or url,
        disable=not progress,
        leave=False,
    )
    try:
        with open(part, "ab" if offset else "wb") as fh:
            while True:
                try:
                    block = response.read(chunk_bytes)
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"transfer of {url} broke after {offset + written} bytes ({exc}); {part} is kept "
                        "and the next attempt resumes from it"
                    ) from exc
                if not block:
                    break
                fh.write(block)
                written += len(block)
                bar.update(len(block))
    finally:
        bar.close()
    return written


# ----------------------------------------------------------------------------------------------- archives


def is_archive(path: Path | str) -> bool:
    """Whether the file name has a supported archive suffix."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a .zip/.tar/.tar.gz archive into ``dest`` atomically, after checking every member.

    ``dest`` is replaced as a whole; on any error it is left exactly as it was.
    """
    archive, dest = Path(archive), Path(dest)
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf)
            with atomic_dir(dest) as tmp:
                zf.extractall(tmp)  # members checked above: plain files and folders under tmp
    elif name.endswith(ARCHIVE_SUFFIXES):
        with tarfile.open(archive, "r:*") as tf:
            _check_tar(archive, tf)
            with atomic_dir(dest) as tmp:
                tf.extractall(tmp, filter="data")
    else:
        raise ValueError(f"{archive}: unsupported archive type; use one of {', '.join(ARCHIVE_SUFFIXES)}")
    return dest


def _member_path(archive: Path, name: str) -> PurePosixPath:
    """The member's path relative to the archive root, or UnsafeArchiveError."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    parts = PurePosixPath(normalized).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing to extract")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_refused(archive: Path, member: str, kind: str, target: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: member {member!r} is a {kind} link (-> {target!r}); archives may hold only files and "
        "folders, because a link can redirect later members outside the destination. Extract the archive "
        "yourself and register the folder as a `local` source (download.sources) if its links are wanted"
    )


def _check_tar(archive: Path, tf: tarfile.TarFile) -> None:
    for m in tf.getmembers():
        _member_path(archive, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or fifo; refusing to extract")
        if m.issym() or m.islnk():
            raise _link_refused(archive, m.name, "hard" if m.islnk() else "symbolic", m.linkname)
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} has an unsupported type; refusing")


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    """Validate every member: relative names without ``..``, regular files and folders only."""
    for info in zf.infolist():
        _member_path(archive, info.filename)
        mode = info.external_attr >> 16
        if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device or fifo; refusing")
        if stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", errors="replace")
            raise _link_refused(archive, info.filename, "symbolic", target)


# ----------------------------------------------------------------------------------------------- local


def register_local(path: Path, dest: Path) -> Path:
    """Copy a local file or folder into ``dest`` (a folder), atomically; returns ``dest``.

    A folder's contents become ``dest``'s contents; a single file lands as ``dest/<name>``. Symlinks
    inside a folder are copied as the files they point to, so DVC hashes real content.
    """
    path, dest = Path(path).expanduser(), Path(dest)
    if not path.exists():
        raise FileNotFoundError(
            f"local source {path} does not exist; fix `path` in params.yaml (download.sources) or "
            "download the release there first"
        )
    if path.resolve() == dest.resolve() or dest.resolve() in path.resolve().parents:
        raise ValueError(f"local source {path} is inside its own destination {dest}; choose another dest")
    with atomic_dir(dest) as tmp:
        if path.is_dir():
            shutil.copytree(path, tmp, dirs_exist_ok=True, symlinks=False)
        else:
            shutil.copy2(path, tmp / path.name)
    return dest
