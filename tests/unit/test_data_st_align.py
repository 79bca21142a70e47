"""ST-Align adapter: hand-made stvg.json entries (inclusive split and span, xywh boxes, 2,000-entry subset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.data.errors import AnnotationError
from stvg.data.registry import load_samples
from stvg.data.st_align import ST_ALIGN_OFFICIAL_ENTRIES, extract_query

PROMPT = (
    "<video>\nAt which time interval in the video can we see a child wearing a red hat holds a bat "
    "occurring? Please describe the location of the corresponding subject/object in this video."
)


def entry(i: int = 0, **meta_over: object) -> dict:
    meta = {
        "width": 640,
        "height": 362,
        "split": [0, 829],
        "time_token": {"<s>": 0, "<e>": 776},
        "spatial_token": {"<bboxes>": {"0": [10, 20, 100, 200], "8": [12, 20, 100, 200]}},
    }
    meta.update(meta_over)
    return {
        "video_path": f"stvg/{8665030691 + i}.mp4",
        "meta": meta,
        "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": "From <s> to <e>."}],
    }


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_entry_conventions(tmp_path: Path) -> None:
    (s,) = load_samples("st-align", write(tmp_path / "stvg.json", [entry()])).samples
    assert s.sample_id == "8665030691_0" and s.video_id == "8665030691" and s.video == "stvg/8665030691.mp4"
    assert s.gt_span_frames == (0, 776) and s.clip_frames == (0, 829)
    assert s.gt_boxes == {0: (10.0, 20.0, 110.0, 220.0), 8: (12.0, 20.0, 112.0, 220.0)}
    assert s.query == "a child wearing a red hat holds a bat" and (s.width, s.height) == (640, 362)


def test_official_subset_option(tmp_path: Path) -> None:
    path = write(tmp_path / "stvg.json", [entry(i) for i in range(ST_ALIGN_OFFICIAL_ENTRIES + 3)])
    assert len(load_samples("st-align", path).samples) == ST_ALIGN_OFFICIAL_ENTRIES + 3
    subset = load_samples("st-align", path, max_entries=ST_ALIGN_OFFICIAL_ENTRIES).samples
    assert len(subset) == 2000 and subset[-1].sample_id == f"{8665030691 + 1999}_1999"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"time_token": {"<s>": 50, "<e>": 10}}, "end before start"),
        ({"spatial_token": {"<bboxes>": {"3": [600, 0, 100, 10]}}}, "outside the 640x362 frame"),
        ({"time_token": {"<s>": 0, "<e>": 900}}, "outside the split"),
    ],
)
def test_bad_entries(tmp_path: Path, over: dict, message: str) -> None:
    path = write(tmp_path / "stvg.json", [entry(0), entry(1, **over)])
    with pytest.raises(AnnotationError, match=message) as info:
        load_samples("st-align", path)
    assert "'8665030692_1'" in str(info.value)
    result = load_samples("st-align", path, skip_invalid=True)
    assert len(result.samples) == 1 and result.invalid[0].sample_id == "8665030692_1"


def test_query_extraction_variants() -> None:
    assert (
        extract_query({"conversations": [{"from": "human", "value": 'When does "a man runs" occur?'}]})
        == "a man runs"
    )
    assert extract_query({"caption": "explicit", "conversations": []}) == "explicit"
    free = {"conversations": [{"from": "human", "value": "<video>\nFind the dog. Please answer briefly."}]}
    assert extract_query(free) == "Find the dog."
