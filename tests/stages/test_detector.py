"""The detector stage: adopt a given weights file, or train a short run end to end on generator frames."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from stvg.stages.detector import main


def write_params(tmp_path: Path, **detector) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"detector": detector}))
    return path


def test_given_weights_are_validated_and_copied(tmp_path: Path):
    from stvg.prompting.detector import load_yolo

    weights = tmp_path / "given.pt"
    load_yolo("yolov8n.yaml").save(str(weights))  # random weights with COCO class names
    pin = hashlib.sha256(weights.read_bytes()).hexdigest()
    params = write_params(tmp_path, weights=str(weights), weights_sha256=pin, classes=["person"])
    out = tmp_path / "artifacts" / "detector"
    assert main(["--params", str(params), "--out", str(out)]) == 0
    assert (out / "weights.pt").read_bytes() == weights.read_bytes()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"] == "given" and len(metrics["sha256"]) == 64
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == "detector" and "person" in summary["classes"]


def test_a_yolo12_checkpoint_saved_as_released_loads_in_safe_mode(tmp_path: Path):
    """The paper's detector family (A2C2f/AAttn blocks) passes Ultralytics' allow-list.

    Saved as a release is: ``save`` then ``strip_optimizer`` (the released yolo12x.pt's format).
    """
    from ultralytics.utils.torch_utils import strip_optimizer

    from stvg.prompting.detector import foreign_globals, load_yolo

    path = tmp_path / "yolo12n.pt"
    load_yolo("yolo12n.yaml").save(str(path))
    strip_optimizer(str(path))
    assert foreign_globals(path) == []
    model = load_yolo(path)
    assert {"A2C2f", "AAttn"} <= {type(m).__name__ for m in model.model.modules()}
    assert "person" in model.names.values()


class _Payload:
    """Pickles as ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    import torch

    from stvg.prompting.detector import load_yolo

    marker = tmp_path / "code-ran"
    path = tmp_path / "crafted.pt"
    model = load_yolo("yolov8n.yaml").model
    torch.save({"model": model, "train_args": {}, "payload": _Payload(marker)}, path)
    return path, marker


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path: Path):
    import torch

    from stvg.prompting.detector import UnsafeCheckpointError, load_yolo

    path, marker = _crafted_checkpoint(tmp_path)
    # the global the payload calls: io.open, which Python 3.12 pickles as _io.open
    with pytest.raises(UnsafeCheckpointError, match=r"refused.*\(_?io\.open\)"):
        load_yolo(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.exists()


def test_the_stage_refuses_a_crafted_checkpoint_even_when_pinned(tmp_path: Path, capsys):
    path, marker = _crafted_checkpoint(tmp_path)
    pin = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "out"
    params = write_params(tmp_path, weights=str(path), weights_sha256=pin)
    assert main(["--params", str(params), "--out", str(out)]) == 1
    assert "refused" in capsys.readouterr().err and not marker.exists()
    assert not out.exists()


def test_an_unpinned_checkpoint_is_refused_before_loading(tmp_path: Path, capsys):
    path, marker = _crafted_checkpoint(tmp_path)
    out = tmp_path / "out"
    assert main(["--params", str(write_params(tmp_path, weights=str(path))), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert "no sha256 pin" in err and f"detector.weights_sha256: {actual}" in err
    assert "detector.allow_unpinned_weights" in err and not out.exists() and not marker.exists()


def test_a_checkpoint_not_matching_its_pin_is_refused(tmp_path: Path, capsys):
    from stvg.prompting.detector import load_yolo

    weights = tmp_path / "given.pt"
    load_yolo("yolov8n.yaml").save(str(weights))
    params = write_params(tmp_path, weights=str(weights), weights_sha256="0" * 64)
    assert main(["--params", str(params), "--out", str(tmp_path / "out")]) == 1
    assert "does not match the pin detector.weights_sha256" in capsys.readouterr().err
    allowed = write_params(tmp_path, weights=str(weights), allow_unpinned_weights=True)
    assert main(["--params", str(allowed), "--out", str(tmp_path / "out")]) == 0  # explicitly allowed


def test_bad_weights_fail_cleanly_without_partial_output(tmp_path: Path, capsys):
    out = tmp_path / "out"
    params = write_params(tmp_path, weights=str(tmp_path / "missing.pt"))
    assert main(["--params", str(params), "--out", str(out)]) == 1
    assert "missing.pt" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_unknown_params_key_is_a_usage_error(tmp_path: Path):
    params = write_params(tmp_path, epoch=3)
    assert main(["--params", str(params), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_trains_a_short_run_end_to_end(tmp_path: Path, monkeypatch):
    from stvg.data.synthetic import SHAPE_CLASSES
    from stvg.prompting.detector import YoloDetector

    monkeypatch.chdir(tmp_path)  # a stray ./runs folder would show up here
    params = write_params(tmp_path, epochs=2, imgsz=96, batch=8, n_train_frames=24, n_val_frames=8)
    out = tmp_path / "artifacts" / "detector"
    assert main(["--params", str(params), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"] == "trained" and metrics["epochs"] == 2
    assert 0.0 <= metrics["mAP50-95"] <= metrics["mAP50"] <= 1.0
    assert metrics["n_train_frames"] == 24 and metrics["classes"] == list(SHAPE_CLASSES)
    run_info = json.loads((tmp_path / "artifacts" / "run_info" / "detector.json").read_text())
    assert run_info["train_s"] > 0 and "seconds" not in metrics  # wall time outside the version
    detector = YoloDetector(out / "weights.pt", imgsz=96)  # loads in safe mode
    assert sorted(detector.class_names.values()) == sorted(SHAPE_CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "params.yaml"]

    # The same params and code again: the same bytes (no save date, timings or temporary paths inside).
    again = tmp_path / "artifacts" / "again"
    assert main(["--params", str(params), "--out", str(again)]) == 0
    for name in ("weights.pt", "metrics.json", "summary.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
