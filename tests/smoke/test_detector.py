"""The YOLO adapter on real Ultralytics models with random weights (built offline from yaml)."""

from __future__ import annotations

import numpy as np
import pytest

from stvg.prompting.detector import YoloDetector, disable_integrations
from stvg.records import Detection

H, W = 120, 160


def frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def confident(detector: YoloDetector, class_id: int = 0) -> YoloDetector:
    """Random heads score ~0; raise one class's bias so every anchor fires for it."""
    for seq in detector.model.model.model[-1].cv3:
        seq[-1].bias.data.fill_(-10.0)
        seq[-1].bias.data[class_id] = 4.0
    return detector


@pytest.fixture(scope="module")
def box_detector() -> YoloDetector:
    return confident(YoloDetector("yolov8n.yaml", conf=0.5, imgsz=96, threads=2), class_id=2)


def test_yaml_models_carry_coco_names_and_validate_the_class_filter():
    det = YoloDetector("yolov8n.yaml", classes=("person",), imgsz=64)
    assert det.class_names[0] == "person" and len(det.class_names) == 80
    assert not det.is_segmentation
    with pytest.raises(ValueError, match="not in"):
        YoloDetector("yolov8n.yaml", classes=("unicorn",))


def test_missing_weights_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="stvg detector"):
        YoloDetector(tmp_path / "nope.pt")


def test_detect_returns_records_per_frame_with_boxes_inside_the_image(box_detector):
    out = box_detector.detect(frames(3), frame_indices=[10, 11, 12])
    assert len(out) == 3
    for frame_index, dets in zip([10, 11, 12], out, strict=True):
        assert dets, "the forced head should fire"
        for d in dets:
            assert isinstance(d, Detection) and d.frame == frame_index
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H
            assert d.score >= 0.5 and d.class_name == "car" and d.class_id == 2


def test_batches_split_into_chunks_give_the_same_result(box_detector):
    fs = frames(5)
    box_detector.batch = 2
    chunked = box_detector.detect(fs, frame_indices=range(5))
    box_detector.batch = 16
    whole = box_detector.detect(fs, frame_indices=range(5))
    assert [[d.frame for d in f] for f in chunked] == [[d.frame for d in f] for f in whole]
    for a, b in zip(chunked, whole, strict=True):
        assert np.allclose([d.box for d in a], [d.box for d in b], atol=1e-3)


def test_class_filter_drops_other_classes(box_detector):
    only_person = YoloDetector("yolov8n.yaml", conf=0.5, classes=("person",), imgsz=96)
    only_person.model = box_detector.model  # same forced head: it only ever predicts "car"
    assert all(len(d) == 0 for d in only_person.detect(frames(2)))


def test_box_models_give_no_masks(box_detector):
    rows = box_detector.detect_with_masks(frames(1))[0]
    assert rows and all(m is None for _, m in rows)


def test_segmentation_models_give_full_resolution_bool_masks():
    import torch

    torch.manual_seed(0)  # random heads: a fixed init keeps some masks non-empty
    det = confident(YoloDetector("yolov8n-seg.yaml", conf=0.5, imgsz=192))
    assert det.is_segmentation
    rows = det.detect_with_masks(frames(2))
    assert len(rows) == 2 and rows[0]
    for d, m in rows[0]:
        assert m is not None and m.dtype == bool and m.shape == (H, W)
        assert m.any() and d.class_name == "person"


def test_ultralytics_logging_integrations_are_off():
    from ultralytics.utils import SETTINGS

    disable_integrations()
    assert SETTINGS["mlflow"] is False and SETTINGS["dvc"] is False and SETTINGS["sync"] is False
