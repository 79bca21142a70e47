"""Charades-STA adapter: real TimeZero JSON counts, original txt lines with duration clipping and drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.data.errors import AnnotationError
from stvg.data.registry import dataset_stats, load_samples

CSV = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def test_real_test_json_counts_and_clipping(shared_data: Path) -> None:
    path = shared_data / "charades_sta" / "charades_test.json"
    assert dataset_stats("charades-sta", path) == {
        "samples": 3720,
        "videos": 1334,
        "invalid": 0,
        "invalid_entries": [],
    }
    samples = {s.sample_id: s for s in load_samples("charades-sta", path).samples}
    first = samples["3MSZA_0"]
    assert first.gt_span_s == (24.3, 30.4) and first.duration_s == 30.96 and first.fps == 0.0
    raw = json.loads(path.read_text())
    assert any(e > raw["AKO6M"]["duration"] for _, e in raw["AKO6M"]["timestamps"])  # in the release ...
    ako = [s for s in samples.values() if s.video_id == "AKO6M"]
    assert all(s.gt_span_s[1] <= 18.58 for s in ako)  # ... clipped to the duration here
    assert any(s.gt_span_s[1] == 18.58 for s in ako)


def test_txt_lines_with_durations_clip_and_drop(tmp_path: Path) -> None:
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text(
        "3MSZA 24.3 30.4##person turn a light on.\n"
        "3MSZA 0.0 6.9##person opening a door.\n"
        "AB12C 12.0 40.0##a person sits down.\n"
        "AB12C 31.0 35.0##a person stands up.\n"
    )
    (tmp_path / "Charades_v1_test.csv").write_text(
        CSV + "3MSZA,a,b,c,d,e,f,g,h,i,30.96\nAB12C,a,b,c,d,e,f,g,h,i,30.0\n"
    )
    result = load_samples("charades-sta", txt)
    assert [s.sample_id for s in result.samples] == ["3MSZA_0", "3MSZA_1", "AB12C_0"]
    assert result.samples[2].gt_span_s == (12.0, 30.0)  # end clipped to the 30 s video
    assert result.samples[0].query == "person turn a light on." and result.samples[0].split == "test"
    assert [(i.sample_id, "clipped end" in i.reason) for i in result.invalid] == [("AB12C_1", True)]


def test_txt_end_before_start_and_bad_lines(tmp_path: Path) -> None:
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text("AAAAA 5.0 2.0##backwards.\nnot a line\nBBBBB 1.0 2.0##fine.\n")
    with pytest.raises(AnnotationError, match="end before start") as info:
        load_samples("charades-sta", txt)
    assert "'AAAAA_0'" in str(info.value) and str(txt) in str(info.value)
    result = load_samples("charades-sta", txt, skip_invalid=True)
    assert [s.sample_id for s in result.samples] == ["BBBBB_0"]
    assert [i.sample_id for i in result.invalid] == ["AAAAA_0", "line2"]


def test_json_missing_video(tmp_path: Path) -> None:
    path = tmp_path / "charades_test.json"
    path.write_text(json.dumps({"ZZZZZ": {"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["x."]}}))
    (tmp_path / "videos").mkdir()
    with pytest.raises(AnnotationError, match="video file not found.*ZZZZZ.mp4"):
        load_samples("charades-sta", path, video_root=tmp_path / "videos")
    (tmp_path / "videos" / "ZZZZZ.mp4").write_bytes(b"x")
    (s,) = load_samples("charades-sta", path, video_root=tmp_path / "videos").samples
    assert s.video == str(tmp_path / "videos" / "ZZZZZ.mp4")
