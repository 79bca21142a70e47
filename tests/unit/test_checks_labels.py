"""The label gate's independent cross-check: a target must be an instance of its video in the mask DB."""

from __future__ import annotations

from stvg.checks.labels import check_labels, label_table


def _label(sample_id: str, video_id: str, target_id: object, split: str = "train") -> dict:
    # target_in_db=True: what the label stage wrote, right or wrong
    return {
        "split": split, "sample_id": sample_id, "video_id": video_id, "target_id": target_id,
        "status": "kept", "start_s": 1.0, "end_s": 3.0, "duration_s": 8.0, "target_in_db": True,
        "end_within_video": True, "vote_share": 1.0, "margin": 1.0, "mean_iou": 0.9, "min_iou": 0.8,
        "presence": 1.0, "ceiling_viou": 0.9, "ceiling_tiou": 1.0,
    }  # fmt: skip


LABELS = [_label("a", "va.mp4", 1), _label("b", "vb.mp4", 2), _label("c", "vc.mp4", 1, split="test")]
DROPS = {"train": 0.0, "test": 0.0}
DB = {"va.mp4": [1, 2], "vb.mp4": [1, 2, 3], "vc.mp4": [1]}


def test_labels_whose_targets_are_in_the_mask_db_pass() -> None:
    report = check_labels(LABELS, DROPS, 0.2, instance_ids=DB)
    assert report.success, report.message()


def test_a_target_that_is_not_an_instance_of_its_video_is_named() -> None:
    labels = [LABELS[0], _label("b", "vb.mp4", 7), LABELS[2]]
    assert check_labels(labels, DROPS, 0.2).success  # the stage's own column claims all is well
    report = check_labels(labels, DROPS, 0.2, instance_ids=DB)
    assert not report.success
    (failure,) = report.failures
    assert failure["column"] == "target_in_prompt_db" and failure["examples"] == ["b"]
    assert "mask database" in report.message()


def test_a_video_missing_from_the_mask_db_fails_its_samples() -> None:
    report = check_labels(LABELS, DROPS, 0.2, instance_ids={"va.mp4": [1, 2], "vb.mp4": [2]})
    (failure,) = report.failures
    assert failure["column"] == "target_in_prompt_db" and failure["examples"] == ["c"]


def test_ids_compare_as_integers_and_non_ids_match_nothing() -> None:
    table = label_table(
        [_label("a", "va.mp4", 2.0), _label("b", "va.mp4", "2"), _label("c", "va.mp4", 1.5), _label("d", "va.mp4", True)],
        DROPS,
        {"va.mp4": [1, 2]},
    )  # fmt: skip
    assert table["target_in_prompt_db"].tolist() == [True, True, False, False]
