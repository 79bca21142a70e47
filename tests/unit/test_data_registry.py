"""Registry, stats and the CLI path; malformed files name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.cli import main as cli_main
from stvg.data.errors import AnnotationError
from stvg.data.registry import FORMATS, dataset_stats, load_samples
from stvg.records import DATASETS


def test_formats_match_the_record_datasets() -> None:
    assert FORMATS == DATASETS


@pytest.mark.parametrize(
    "fmt", ["hcstvg-v1", "hcstvg-v2", "vidstg", "mevis", "charades-sta", "st-align", "synthetic"]
)
def test_malformed_json_names_the_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "anno.json"
    path.write_text('{"a.mp4": {"bbox": [[1, 2, 3, 4]],')
    with pytest.raises(AnnotationError, match="not valid JSON") as info:
        load_samples(fmt, path, skip_invalid=True)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "obj"), [("hcstvg-v2", []), ("vidstg", {}), ("st-align", {"a": 1}), ("mevis", [])]
)
def test_wrong_top_level_type(tmp_path: Path, fmt: str, obj: object) -> None:
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(AnnotationError, match="top level must be") as info:
        load_samples(fmt, path)
    assert str(path) in str(info.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="cannot read"):
        load_samples("hcstvg-v2", tmp_path / "nope.json")
    with pytest.raises(ValueError, match="unknown data set format"):
        load_samples("kinetics", tmp_path / "nope.json")


def test_cli_prints_one_json_line(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["data", "stats", "vidstg", str(shared_data / "vidstg" / "val_annotations.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "samples": 8956,
        "videos": 602,
        "invalid": 0,
        "declarative": 3996,
        "interrogative": 4960,
    }


def test_cli_reports_a_malformed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "val_v2.json"
    path.write_text("[1,")
    assert cli_main(["data", "stats", "hcstvg-v2", str(path)]) == 1
    assert str(path) in capsys.readouterr().err


def test_stats_count_invalid_samples(tmp_path: Path) -> None:
    path = tmp_path / "query_v2.json"
    path.write_text(json.dumps({"a.mp4": "A man waves.", "b.mp4": " "}))
    assert dataset_stats("hcstvg-v2", path) == {"samples": 1, "videos": 1, "invalid": 1}


def test_load_split_applies_data_params(tmp_path: Path) -> None:
    from stvg.config import DataParams
    from stvg.data.registry import load_split

    anno = tmp_path / "anno"
    anno.mkdir()
    query = {f"{i}.mp4": f"Person {i} waves." for i in range(5)}
    query["bad.mp4"] = ""
    (anno / "val_v2.json").write_text(json.dumps(query))
    params = DataParams(
        dataset="hcstvg-v2",
        test_annotation="anno/val_v2.json",
        video_root="videos",
        max_videos=3,
        skip_invalid=True,
    )
    result = load_split(params, tmp_path, "test", with_videos=False)
    assert [s.video_id for s in result.samples] == ["0.mp4", "1.mp4", "2.mp4"]
    assert [i.sample_id for i in result.invalid] == ["bad"]
    (tmp_path / "videos" / "3").mkdir(parents=True)
    (tmp_path / "videos" / "3" / "1.mp4").write_bytes(b"x")
    found = load_split(params, tmp_path, "test")
    assert [s.video for s in found.samples] == [str(tmp_path / "videos" / "3" / "1.mp4")]
