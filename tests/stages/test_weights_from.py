"""`stvg weights fetch NAME --from PATH`: a local copy adopted as the checkpoint, checksummed, atomically;
registered names and paths resolve to the same files the stages load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stvg.cli import main
from stvg.prompting import weights


def test_from_copies_the_file_under_its_registered_name_and_prints_its_sha256(tmp_path: Path, capsys) -> None:
    src = tmp_path / "downloads" / "some-name.pt"
    src.parent.mkdir()
    src.write_bytes(b"yolo weights")
    digest = hashlib.sha256(b"yolo weights").hexdigest()
    assert main(["weights", "fetch", "yolo12x", "--from", str(src), "--dest", str(tmp_path / "w")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "name": "yolo12x",
        "path": str(tmp_path / "w" / "yolo12x.pt"),
        "sha256": digest,
        "pin_in_params": "detector.weights_sha256",
        "pinned": [],
    }
    assert (tmp_path / "w" / "yolo12x.pt").read_bytes() == b"yolo weights"
    # recorded beside it, as a download records it (sha256sum format)
    assert (tmp_path / "w" / "yolo12x.pt.sha256").read_text().split() == [digest, "yolo12x.pt"]
    # the stages find it by name in that folder
    assert weights.resolve_weights("yolo12x", tmp_path / "w") == tmp_path / "w" / "yolo12x.pt"


def test_pin_in_writes_the_path_and_sha256_into_params_so_the_stage_accepts_the_file(
    tmp_path: Path, repo_root: Path, capsys
) -> None:
    """The paper steps need no hand edit: the fetch pins what it fetched (trust on first use)."""
    from stvg.config import apply_overrides, load_params

    params = tmp_path / "params.yaml"
    params.write_text((repo_root / "params.yaml").read_text())
    apply_overrides(params, repo_root / "params.paper.yaml")
    src = tmp_path / "yolo12x.pt"
    src.write_bytes(b"yolo weights")
    dest = tmp_path / "w"
    argv = ["weights", "fetch", "yolo12x", "--from", str(src), "--dest", str(dest), "--pin-in", str(params)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pinned"] == ["detector.weights", "detector.weights_sha256"]
    detector = load_params(params).detector
    assert (detector.weights, detector.weights_sha256) == (str(dest / "yolo12x.pt"), out["sha256"])
    assert "# STVG-R1 pipeline parameters" in params.read_text()  # comments kept
    pinned = weights.check_pinned(
        detector.weights, detector.weights_sha256, allow_unpinned=False, param="detector.weights_sha256"
    )
    assert pinned == out["sha256"]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["pinned"] == []  # again: nothing to change


def test_pin_in_refuses_a_segmenter_checkpoint_or_a_missing_params_file_before_fetching(
    tmp_path: Path, repo_root: Path, capsys
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((repo_root / "params.yaml").read_text())
    before = params.read_bytes()
    src = tmp_path / "sam.pt"
    src.write_bytes(b"sam weights")
    argv = ["weights", "fetch", "sam2.1_hiera_large", "--from", str(src), "--dest", str(tmp_path / "w")]
    assert main([*argv, "--pin-in", str(params)]) == 2
    assert "only a detector (YOLO) checkpoint" in capsys.readouterr().err
    assert params.read_bytes() == before and not (tmp_path / "w").exists()  # refused before fetching
    yolo = ["weights", "fetch", "yolo12x", "--from", str(src), "--dest", str(tmp_path / "w")]
    assert main([*yolo, "--pin-in", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml is not a params file" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_from_with_a_wrong_pin_fails_and_writes_nothing(tmp_path: Path, capsys) -> None:
    src = tmp_path / "sam.pt"
    src.write_bytes(b"not sam")
    code = main(
        ["weights", "fetch", "sam2.1_hiera_large", "--from", str(src), "--dest", str(tmp_path / "w")]
        + ["--sha256", "0" * 64]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "sha256" in err and str(src) in err and "Traceback" not in err
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_from_a_missing_file_names_it(tmp_path: Path, capsys) -> None:
    assert main(["weights", "fetch", "yolo12x", "--from", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt" in capsys.readouterr().err


def test_a_missing_registered_file_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"stvg weights fetch sam2\.1_hiera_large"):
        weights.resolve_weights(tmp_path / "sam2.1_hiera_large.pt")


def test_paper_params_name_the_files_that_fetch_writes(repo_root: Path) -> None:
    import yaml

    paper = yaml.safe_load((repo_root / "params.paper.yaml").read_text())
    names = {c.filename: c.name for c in weights.REGISTRY.values()}
    for spec in (paper["detector"]["weights"], paper["prompt"]["sam2"]["checkpoint"]):
        path = Path(spec)
        assert path.parent == Path("weights") and path.name in names, spec
    assert names[Path(paper["detector"]["weights"]).name] == "yolo12x"
