"""Fast box-array parsing: exact on compact files, and None (exact fallback) on anything unexpected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stvg.data.boxparse import parse_box_arrays
from stvg.data.tubes import BoxTube

ANNO = {
    "a.mp4": {"bbox": [[1, 2, 3, 4], [5, 6, 7, 8]], "English": 'said "bbox": [[9, 9, 9, 9]]', "st_frame": 3},
    "b.mp4": {"bbox": [], "English": "bbox", "st_frame": 1},
    "c.mp4": {"English": "x", "bbox": [[-1.5, 2e2, 0.25, 4]], "st_frame": 2},
}


def test_compact_file_parses_into_one_array() -> None:
    parsed = parse_box_arrays(json.dumps(ANNO).encode())
    assert parsed is not None
    assert parsed.obj["a.mp4"]["English"] == 'said "bbox": [[9, 9, 9, 9]]'
    assert parsed.obj["b.mp4"]["English"] == "bbox"
    rows = [parsed.lookup(parsed.obj[k]["bbox"]) for k in ANNO]
    assert [b - a for a, b in rows] == [2, 0, 1]
    for key, (a, b) in zip(ANNO, rows):
        np.testing.assert_array_equal(
            parsed.boxes[a:b], np.asarray(ANNO[key]["bbox"], dtype=float).reshape(-1, 4)
        )
    assert parsed.lookup("plain text") is None


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(ANNO, indent=2),  # pretty-printed arrays
        json.dumps({"a": {"bbox": [[1, 2, 3], [4, 5, 6, 7]]}}),  # a short box
        json.dumps({"a": {"bbox": [[1, 2, 3, 4, 5]]}}),  # a long box
        json.dumps({"a": {"bbox": [[1, 2, 3, 4]], "x": 1}})[:-3],  # truncated JSON
        json.dumps({"a": {"bbox": "none"}}),  # no array at all
    ],
)
def test_unexpected_layouts_fall_back(text: str) -> None:
    assert parse_box_arrays(text.encode()) is None


def test_box_tube_is_a_read_only_frame_mapping() -> None:
    tube = BoxTube(10, np.array([[0, 0, 2, 2], [1, 1, 3, 3]], dtype=float))
    assert list(tube) == [10, 11] and len(tube) == 2
    assert tube[11] == (1.0, 1.0, 3.0, 3.0) and tube.get(12) is None and 9 not in tube
    assert dict(tube.items()) == {10: (0.0, 0.0, 2.0, 2.0), 11: (1.0, 1.0, 3.0, 3.0)} == tube
    assert tube.to_dict() == dict(tube) and list(tube.values()) == [
        (0.0, 0.0, 2.0, 2.0),
        (1.0, 1.0, 3.0, 3.0),
    ]
    assert (11, (1.0, 1.0, 3.0, 3.0)) in tube.items()
    with pytest.raises(KeyError):
        tube[12]
    with pytest.raises(ValueError):
        tube.boxes[0, 0] = 5.0
    import pickle

    assert pickle.loads(pickle.dumps(tube)) == tube
