"""The checkpoint registry: explicit fetch through stvg.data.fetch.download, never at resolve time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stvg.prompting import weights


def test_registry_holds_the_paper_checkpoints_with_official_urls():
    for name in (
        "yolo12x",
        "yolov12x",
        *(f"sam2.1_hiera_{s}" for s in ("tiny", "small", "base_plus", "large")),
    ):
        entry = weights.checkpoint(name)
        assert entry.url.startswith("https://") and entry.url.endswith(entry.filename)
        assert len(entry.sha256) in (0, 64)
    assert weights.checkpoint("sam2.1_hiera_large").config == "configs/sam2.1/sam2.1_hiera_l.yaml"
    with pytest.raises(KeyError, match="registered"):
        weights.checkpoint("yolo99")


def test_fetch_goes_through_the_download_helper(tmp_path: Path, monkeypatch):
    calls = []

    def fake_download(url, dest, *, sha256="", progress=True, **_):
        calls.append((url, Path(dest), sha256))
        Path(dest).write_bytes(b"weights")
        return Path(dest)

    monkeypatch.setattr("stvg.data.fetch.download", fake_download)
    pin = hashlib.sha256(b"weights").hexdigest()
    path = weights.fetch_weights("sam2.1_hiera_tiny", tmp_path / "w", pin=pin.upper())
    assert path == tmp_path / "w" / "sam2.1_hiera_tiny.pt" and path.read_bytes() == b"weights"
    assert calls == [(weights.checkpoint("sam2.1_hiera_tiny").url, path, pin)]
    assert weights.sha256_of(path) == pin
    record = path.with_name(path.name + ".sha256")  # what `stvg weights fetch` leaves for the pin
    assert record.read_text() == f"{pin}  sam2.1_hiera_tiny.pt\n"


def test_fetch_without_a_pin_records_the_downloaded_sha256(tmp_path: Path, monkeypatch):
    def fake_download(url, dest, *, sha256="", progress=True, **_):
        Path(dest).write_bytes(b"other weights")
        return Path(dest)

    monkeypatch.setattr("stvg.data.fetch.download", fake_download)
    path = weights.fetch_weights("yolo12x", tmp_path)
    digest = hashlib.sha256(b"other weights").hexdigest()
    assert (tmp_path / "yolo12x.pt.sha256").read_text().split() == [digest, "yolo12x.pt"]
    with pytest.raises(weights.WeightsPinError, match="yolo12x.pt.sha256"):
        weights.check_pinned(path, "", allow_unpinned=False, param="detector.weights_sha256")
    assert weights.check_pinned(path, digest.upper(), allow_unpinned=False, param="x.y") == digest


def test_resolve_never_downloads(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("stvg.data.fetch.download", lambda *a, **k: pytest.fail("resolve must not download"))
    local = tmp_path / "mine.pt"
    local.write_bytes(b"x")
    assert weights.resolve_weights(local) == local
    with pytest.raises(FileNotFoundError, match="stvg weights fetch yolo12x"):
        weights.resolve_weights("yolo12x", tmp_path)
    (tmp_path / "yolo12x.pt").write_bytes(b"y")
    assert weights.resolve_weights("yolo12x", tmp_path) == tmp_path / "yolo12x.pt"
    with pytest.raises(FileNotFoundError, match="registered name"):
        weights.resolve_weights(tmp_path / "nothing.pt", tmp_path)


def test_weights_fetch_command_prints_the_sha256_and_where_to_pin_it(tmp_path: Path, monkeypatch, capsys):
    import json

    from stvg import cli

    def fake_download(url, dest, *, sha256="", progress=True, **_):
        Path(dest).write_bytes(b"yolo weights")
        return Path(dest)

    monkeypatch.setattr("stvg.data.fetch.download", fake_download)
    assert cli.main(["weights", "fetch", "yolo12x", "--dest", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["sha256"] == hashlib.sha256(b"yolo weights").hexdigest()
    assert printed["pin_in_params"] == "detector.weights_sha256"
