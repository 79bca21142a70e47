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
        "invalid_entries": [],
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
    stats = dataset_stats("hcstvg-v2", path)
    assert {k: stats[k] for k in ("samples", "videos", "invalid")} == {
        "samples": 1,
        "videos": 1,
        "invalid": 1,
    }
    assert [e["sample_id"] for e in stats["invalid_entries"]] == ["b"]
    assert (
        "empty" in stats["invalid_entries"][0]["reason"]
        or "sentence" in stats["invalid_entries"][0]["reason"]
    )


def test_cli_stats_names_every_invalid_entry_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed entries are counted AND named (JSON field and stderr), never accepted silently."""
    bad_frame = _hcstvg_entry()
    bad_frame["st_frame"] = 0  # st_frame is 1-based
    no_boxes = _hcstvg_entry()
    del no_boxes["bbox"]
    path = _write(tmp_path / "val_v2.json", {"a.mp4": _hcstvg_entry(), "b.mp4": bad_frame, "c.mp4": no_boxes})
    assert cli_main(["data", "stats", "hcstvg-v2", str(path)]) == 0
    captured = capsys.readouterr()
    stats = json.loads(captured.out)
    assert stats["samples"] == 1 and stats["invalid"] == 2
    named = {e["sample_id"]: e["reason"] for e in stats["invalid_entries"]}
    assert set(named) == {"b", "c"}
    assert "st_frame" in named["b"] and "bbox" in named["c"]
    assert "'b'" in captured.err and "st_frame" in captured.err and "'c'" in captured.err


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


def _write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def _hcstvg_entry(**over: object) -> dict:
    entry = {"bbox": [[10, 20, 30, 40]] * 3, "st_time": 1.0, "ed_time": 1.3, "img_num": 200, "st_frame": 11}
    entry.update({"English": "The man in the grey suit sits down.", "img_size": [240, 320], **over})
    return entry


def _mevis_split(root: Path) -> Path:
    rle = {"size": [4, 4], "counts": "04L0"}
    meta = {
        "videos": {
            "v1": {
                "frames": ["00000", "00001"],
                "expressions": {
                    "0": {"exp": "the dog running", "obj_id": [0], "anno_id": [7]},
                    "1": {"exp": "both dogs", "obj_id": [0, 1], "anno_id": [7, 8]},
                },
            },
            "v2": {
                "frames": ["00000"],
                "expressions": {"0": {"exp": "a cat", "obj_id": [0], "anno_id": [9]}},
            },
        }
    }
    _write(root / "mask_dict.json", {"7": [rle, None], "8": [None, rle], "9": [rle]})
    _write(root / "meta_expressions.json", meta)
    return root


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("hcstvg-v1", {"samples": 2, "videos": 2, "invalid": 0}),
        ("hcstvg-v2", {"samples": 2, "videos": 2, "invalid": 0}),
        ("synthetic", {"samples": 2, "videos": 2, "invalid": 0}),
        ("mevis", {"samples": 3, "videos": 2, "invalid": 0}),
        ("charades-sta", {"samples": 3, "videos": 2, "invalid": 0}),
        ("st-align", {"samples": 2, "videos": 2, "invalid": 0}),
    ],
)
def test_cli_stats_for_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, expected: dict
) -> None:
    """`stvg data stats FORMAT PATH` on a small file in each format's own release layout."""
    if fmt in ("hcstvg-v1", "hcstvg-v2", "synthetic"):
        entries = {"a.mp4": _hcstvg_entry(), "b.mkv": _hcstvg_entry(English="A woman opens the door.")}
        if fmt == "hcstvg-v1":  # v1 names the sentence `caption` and gives width/height
            entries = {
                k: {**{f: x for f, x in v.items() if f not in ("English", "img_size")}}
                | {"caption": v["English"], "width": 320, "height": 240}
                for k, v in entries.items()
            }
        if fmt == "synthetic":
            entries = {k: {**v, "fps": 10.0} for k, v in entries.items()}
        path = _write(tmp_path / "anno" / "val.json", entries)
    elif fmt == "mevis":
        path = _mevis_split(tmp_path / "valid_u")  # the split folder, as MeViS ships it
    elif fmt == "charades-sta":
        path = _write(
            tmp_path / "charades_test.json",
            {
                "3MSZA": {
                    "duration": 30.96,
                    "timestamps": [[24.3, 30.4], [0.0, 5.1]],
                    "sentences": ["a", "b"],
                },
                "ABCDE": {"duration": 12.0, "timestamps": [[1.0, 4.0]], "sentences": ["person opens a door"]},
            },
        )
    else:
        from tests.unit.test_data_st_align import entry

        path = _write(tmp_path / "stvg.json", [entry(0), entry(1)])
    assert cli_main(["data", "stats", fmt, str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {**expected, "invalid_entries": []}
