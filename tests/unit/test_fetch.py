"""Download, resume, checksum and safe extraction against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stvg.data.fetch import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download,
    extract_archive,
    register_local,
)


@dataclass
class ServerState:
    """What the test server serves and how it misbehaves."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate_next: int | None = None  # close the connection after this many body bytes, once
    ignore_range: bool = False  # answer 200 with the whole file even when a Range is asked
    ranges: list[str | None] = field(default_factory=list)  # the Range header of every GET


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``state.files`` with single-range support (SimpleHTTPRequestHandler has none)."""

    state: ServerState

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        body = self.state.files.get(self.path)
        range_header = self.headers.get("Range")
        self.state.ranges.append(range_header)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if range_header and not self.state.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.state.truncate_next is not None:
            payload = payload[: self.state.truncate_next]
            self.state.truncate_next = None
            self.wfile.write(payload)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    handler = type("Handler", (RangeHandler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _payload(n: int = 300_000) -> bytes:
    return os.urandom(n)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------- download


def test_download_full_file_with_checksum(server, tmp_path):
    base, state = server
    data = _payload()
    state.files["/release.bin"] = data
    dest = download(f"{base}/release.bin", tmp_path / "release.bin", sha256=_sha(data), progress=False)
    assert dest.read_bytes() == data
    assert not (tmp_path / "release.bin.part").exists()
    assert state.ranges == [None]


def test_truncated_transfer_keeps_part_then_resumes_with_range(server, tmp_path):
    base, state = server
    data = _payload()
    state.files["/release.bin"] = data
    state.truncate_next = 100_000
    dest = tmp_path / "release.bin"
    with pytest.raises(DownloadError, match="truncated at 100000 of 300000 bytes"):
        download(f"{base}/release.bin", dest, sha256=_sha(data), chunk_bytes=4096, progress=False)
    assert not dest.exists()
    assert (tmp_path / "release.bin.part").stat().st_size == 100_000

    download(f"{base}/release.bin", dest, sha256=_sha(data), chunk_bytes=4096, progress=False)
    assert state.ranges[-1] == "bytes=100000-"
    assert dest.read_bytes() == data
    assert not (tmp_path / "release.bin.part").exists()


def test_resume_against_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, state = server
    data = _payload()
    state.files["/release.bin"] = data
    state.ignore_range = True
    (tmp_path / "release.bin.part").write_bytes(b"stale bytes that must not survive")
    download(f"{base}/release.bin", tmp_path / "release.bin", sha256=_sha(data), progress=False)
    assert state.ranges == ["bytes=33-"]
    assert (tmp_path / "release.bin").read_bytes() == data


def test_complete_part_answered_416_is_finished_without_refetch(server, tmp_path):
    base, state = server
    data = _payload(5000)
    state.files["/release.bin"] = data
    (tmp_path / "release.bin.part").write_bytes(data)
    download(f"{base}/release.bin", tmp_path / "release.bin", sha256=_sha(data), progress=False)
    assert (tmp_path / "release.bin").read_bytes() == data


def test_checksum_mismatch_names_url_and_hashes_and_leaves_nothing(server, tmp_path):
    base, state = server
    data = _payload(10_000)
    state.files["/release.bin"] = data
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as excinfo:
        download(f"{base}/release.bin", tmp_path / "release.bin", sha256=wrong, progress=False)
    message = str(excinfo.value)
    assert f"{base}/release.bin" in message and wrong in message and _sha(data) in message
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_not_retryable(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404") as excinfo:
        download(f"{base}/missing.bin", tmp_path / "x.bin", progress=False)
    assert excinfo.value.retryable is False
    assert list(tmp_path.iterdir()) == []


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path):
    base, state = server
    data = _payload(1000)
    state.files["/release.bin"] = data
    (tmp_path / "release.bin").write_bytes(data)
    download(f"{base}/release.bin", tmp_path / "release.bin", sha256=_sha(data), progress=False)
    assert state.ranges == []


# ----------------------------------------------------------------------------------------------- archives


def _zip_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # links first, so later members could go through them
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0
            zf.writestr(info, target)
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _tar_bytes(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:  # links first, as in _zip_bytes
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_archive_downloaded_and_extracted(server, tmp_path):
    base, state = server
    archive = _tar_bytes({"release/anno.json": b"{}", "release/videos/a.mp4": b"v"})
    state.files["/release.tar.gz"] = archive
    path = download(f"{base}/release.tar.gz", tmp_path / "cache" / "release.tar.gz", sha256=_sha(archive))
    out = extract_archive(path, tmp_path / "data" / "hcstvg")
    assert (out / "release" / "anno.json").read_bytes() == b"{}"
    assert (out / "release" / "videos" / "a.mp4").read_bytes() == b"v"


def _chain(escape_to: str, depth: int = 12) -> tuple[dict[str, str], str]:
    """Links that each look harmless but together climb out: l0 -> ., l{i} -> l{i-1}/.. (+ a member)."""
    links = {"l0": "."} | {f"l{i}": f"l{i - 1}/.." for i in range(1, depth + 1)}
    return links, f"l{depth}/{escape_to.lstrip('/')}"


BAD_ZIPS = {
    "dotdot": ({"ok.txt": b"1", "../evil.txt": b"x"}, None, "contains '..'"),
    "absolute": ({"ok.txt": b"1", "/tmp/evil.txt": b"x"}, None, "absolute path"),
    "symlink_out": ({"ok.txt": b"1"}, {"link": "../../outside"}, "symbolic link"),
    "symlink_absolute": ({"ok.txt": b"1"}, {"link": "/etc/passwd"}, "symbolic link"),
    "symlink_inside": ({"a/file.txt": b"x"}, {"a/link.txt": "file.txt"}, "symbolic link"),
}

BAD_TARS = {
    "dotdot": ({"ok.txt": b"1", "sub/../../evil.txt": b"x"}, None, "contains '..'"),
    "absolute": ({"ok.txt": b"1", "/tmp/evil.txt": b"x"}, None, "absolute path"),
    "symlink_out": ({"ok.txt": b"1"}, {"sub/link": (tarfile.SYMTYPE, "../../outside")}, "symbolic link"),
    "symlink_inside": ({"ok.txt": b"1"}, {"link": (tarfile.SYMTYPE, "ok.txt")}, "symbolic link"),
    "hardlink_out": ({"ok.txt": b"1"}, {"hard": (tarfile.LNKTYPE, "../outside")}, "hard link"),
    "hardlink_inside": ({"ok.txt": b"1"}, {"hard": (tarfile.LNKTYPE, "ok.txt")}, "hard link"),
    "char_device": ({"ok.txt": b"1"}, {"dev": (tarfile.CHRTYPE, "")}, "device"),
    "block_device": ({"ok.txt": b"1"}, {"dev": (tarfile.BLKTYPE, "")}, "device"),
    "fifo": ({"ok.txt": b"1"}, {"fifo": (tarfile.FIFOTYPE, "")}, "device or fifo"),
}


def test_zip_symlink_chain_cannot_write_outside_destination(tmp_path):
    target = tmp_path / "outside" / "escaped.txt"
    target.parent.mkdir()
    links, member = _chain(str(target))
    archive = tmp_path / "chain.zip"
    archive.write_bytes(_zip_bytes({member: b"pwned"}, links))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "data" / "release")
    assert not target.exists()
    assert not (tmp_path / "data" / "release").exists()


def test_tar_symlink_chain_cannot_write_outside_destination(tmp_path):
    target = tmp_path / "outside" / "escaped.txt"
    target.parent.mkdir()
    links, member = _chain(str(target))
    archive = tmp_path / "chain.tar.gz"
    archive.write_bytes(
        _tar_bytes({member: b"pwned"}, {name: (tarfile.SYMTYPE, dest) for name, dest in links.items()})
    )
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "data" / "release")
    assert not target.exists()


def test_zip_device_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"1")
        info = zipfile.ZipInfo("dev")
        info.external_attr = 0o020644 << 16  # character device
        zf.writestr(info, b"")
    archive = tmp_path / "dev.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="device"):
        extract_archive(archive, tmp_path / "data" / "release")
    assert not (tmp_path / "data" / "release").exists()


def test_link_refusal_names_member_and_fix(tmp_path):
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(_tar_bytes({"a.txt": b"1"}, {"b.txt": (tarfile.SYMTYPE, "a.txt")}))
    with pytest.raises(UnsafeArchiveError) as excinfo:
        extract_archive(archive, tmp_path / "data" / "release")
    message = str(excinfo.value)
    assert "'b.txt'" in message and "local" in message


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_unsafe_zip_is_rejected_and_nothing_written(tmp_path, case):
    members, links, message = BAD_ZIPS[case]
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_bytes(members, links))
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, data / "release")
    assert list(data.iterdir()) == []


@pytest.mark.parametrize("case", sorted(BAD_TARS))
def test_unsafe_tar_is_rejected_and_nothing_written(tmp_path, case):
    members, links, message = BAD_TARS[case]
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_bytes(members, links))
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, data / "release")
    assert list(data.iterdir()) == []


def test_rejected_archive_leaves_previous_release_untouched(tmp_path):
    dest = tmp_path / "data" / "release"
    good = tmp_path / "good.zip"
    good.write_bytes(_zip_bytes({"anno.json": b"v1"}))
    extract_archive(good, dest)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip_bytes({"anno.json": b"v2", "../evil": b"x"}))
    with pytest.raises(UnsafeArchiveError):
        extract_archive(bad, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["release"]
    assert (dest / "anno.json").read_bytes() == b"v1"


def test_traversal_archive_served_over_http_never_reaches_data(server, tmp_path):
    base, state = server
    archive = _tar_bytes({"anno.json": b"{}", "../evil": b"x"})
    state.files["/bad.tar.gz"] = archive
    path = download(f"{base}/bad.tar.gz", tmp_path / "cache" / "bad.tar.gz", sha256=_sha(archive))
    (tmp_path / "data").mkdir()
    with pytest.raises(UnsafeArchiveError):
        extract_archive(path, tmp_path / "data" / "release")
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "evil").exists()


# ----------------------------------------------------------------------------------------------- local


def test_register_local_copies_folder_and_file(tmp_path):
    src = tmp_path / "release"
    (src / "videos").mkdir(parents=True)
    (src / "anno.json").write_text("{}")
    (src / "videos" / "a.mp4").write_bytes(b"v")
    out = register_local(src, tmp_path / "data" / "hcstvg")
    assert (out / "videos" / "a.mp4").read_bytes() == b"v"
    assert (out / "anno.json").stat().st_ino != (src / "anno.json").stat().st_ino  # a copy, not a link

    single = register_local(src / "anno.json", tmp_path / "data" / "single")
    assert (single / "anno.json").read_text() == "{}"


def test_register_local_missing_path_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="download.sources"):
        register_local(tmp_path / "nope", tmp_path / "data" / "x")
    assert not (tmp_path / "data" / "x").exists()


# ----------------------------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ({"name": "x", "kind": "local", "path": "/p", "dest": "../outside"}, "dest"),
        ({"name": "x", "kind": "local", "path": "/p", "dest": "/abs"}, "dest"),
        ({"name": "..", "kind": "local", "path": "/p"}, "dest"),
        ({"name": "a/b", "kind": "local", "path": "/p"}, "name"),
        ({"name": "x", "kind": "http", "url": "http://h/x.zip", "sha256": "z" * 64}, "sha256"),
        ({"name": "x", "kind": "http", "url": "ftp://h/x.zip"}, "url"),
    ],
)
def test_unsafe_or_malformed_sources_are_rejected_at_load(source, key):
    from stvg.config import ParamsError, params_from_dict

    with pytest.raises(ParamsError, match=rf"download.sources\[.*\]\.{key}"):
        params_from_dict({"download": {"sources": [source]}})
