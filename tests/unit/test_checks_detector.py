"""The detector gate passes a trained or adopted detector and names the folder behind each defect."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stvg.checks.detector import check_detector


def _folder(tmp_path: Path, metrics: dict | None, weights: bytes | None = b"\x80" * 64) -> Path:
    out = tmp_path / "detector"
    out.mkdir()
    if weights is not None:
        (out / "weights.pt").write_bytes(weights)
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics))  # NaN is written as NaN, as json does
    return out


TRAINED = {"source": "trained", "mAP50": 0.98, "mAP50-95": 0.9, "epochs": 16}


def test_a_trained_detector_with_a_positive_map_passes(tmp_path: Path) -> None:
    report = check_detector(_folder(tmp_path, TRAINED))
    assert report.success, report.message()


def test_given_weights_pass_without_a_map(tmp_path: Path) -> None:
    out = _folder(tmp_path, {"source": "given", "weights": "yolo12x.pt", "classes": ["person"]})
    assert check_detector(out, min_map50=0.9).success


@pytest.mark.parametrize(
    ("metrics", "weights", "column"),
    [
        (TRAINED | {"mAP50": 0.0}, b"w", "mAP50"),  # learned nothing
        (TRAINED | {"mAP50": math.nan}, b"w", "mAP50"),
        (TRAINED | {"mAP50": math.inf}, b"w", "mAP50"),
        ({k: v for k, v in TRAINED.items() if k != "mAP50"}, b"w", "mAP50"),
        (TRAINED, None, "weights_bytes"),  # no weights file
        (TRAINED, b"", "weights_bytes"),  # an empty one
        (None, b"w", "source"),  # no metrics.json at all
    ],
    ids=["zero-map", "nan-map", "inf-map", "no-map", "no-weights", "empty-weights", "no-metrics"],
)
def test_defects_fail_naming_the_column_and_the_folder(
    tmp_path: Path, metrics: dict | None, weights: bytes | None, column: str
) -> None:
    out = _folder(tmp_path, metrics, weights)
    report = check_detector(out)
    assert not report.success
    failed = [f for f in report.failures if f["column"] == column]
    assert failed and failed[0]["examples"] == [str(out)]
    assert str(out) in report.message()


def test_a_configured_bound_is_applied(tmp_path: Path) -> None:
    out = _folder(tmp_path, TRAINED | {"mAP50": 0.85})
    assert check_detector(out, min_map50=0.8).success
    report = check_detector(out, min_map50=0.9)
    assert not report.success and ">= 0.9" in report.message()


def test_given_weights_still_need_the_file(tmp_path: Path) -> None:
    report = check_detector(_folder(tmp_path, {"source": "given"}, weights=b""))
    assert [f["column"] for f in report.failures] == ["weights_bytes"]
