"""params.yaml loads into frozen, validated sections; bad keys/types/values name the key and the fix."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from stvg.config import ParamsError, apply_overrides, flatten, load_params, params_from_dict, params_to_dict


def test_repo_params_load_and_are_frozen(repo_root: Path) -> None:
    p = load_params(repo_root / "params.yaml")
    assert p.prompt.redetect_every == 15
    assert p.data.dataset == "synthetic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.prompt.redetect_every = 3  # type: ignore[misc]


def test_unknown_key_names_the_key_and_the_valid_ones() -> None:
    with pytest.raises(
        ParamsError, match=r"prompt\.redetect_evry.*valid keys under `prompt`.*redetect_every"
    ):
        params_from_dict({"prompt": {"redetect_evry": 15}})


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(ParamsError, match="unknown key.*promt"):
        params_from_dict({"promt": {}})


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ({"prompt": {"redetect_every": 0}}, r"`prompt\.redetect_every` must be >= 1"),
        ({"prompt": {"redetect_every": "15"}}, r"`prompt\.redetect_every` must be an integer"),
        ({"prompt": {"backward": "yes"}}, r"`prompt\.backward` must be true or false"),
        ({"prompt": {"backend": "gpu"}}, r"`prompt\.backend` must be one of \['cpu', 'sam2'\]"),
        ({"prompt": {"split_blob_ratio": 0.8}}, r"`prompt\.split_blob_ratio` must be > 1 .* or 0"),
        (
            {"prompt": {"extend_hidden_fraction": 1.5}},
            r"`prompt\.extend_hidden_fraction` must be in \[0, 1\]",
        ),
        ({"detector": {"conf": 1.5}}, r"`detector\.conf` must be in \(0, 1\)"),
        ({"label": {"min_vote_share": 0.8, "flag_vote_share": 0.6}}, r"label\.flag_vote_share"),
        ({"synthetic": {"shape_size": [10]}}, r"`synthetic\.shape_size` must be a list of 2 values"),
        ({"train": {"reward_weights": {"bogus": 1.0}}}, r"train\.reward_weights.*bogus"),
        ({"train": {"grpo": {"num_generations": 1}}}, r"train\.grpo\.num_generations"),
        ({"download": {"sources": [{"name": "x", "kind": "http", "url": "ftp://a"}]}}, r"url.*http"),
        ({"data": {"dataset": "kinetics"}}, r"`data\.dataset` must be one of"),
        (
            {"train": {"answer_parser": "loose"}},
            r"`train\.answer_parser` must be one of \['official', 'lenient'\]",
        ),
        ({"train": {"reward_id_needs_time": "no"}}, r"`train\.reward_id_needs_time` must be true or false"),
        ({"evaluate": {"answer_parser": "regex"}}, r"`evaluate\.answer_parser` must be one of"),
        ({"evaluate": {"threshold_op": "=>"}}, r"`evaluate\.threshold_op` must be one of"),
        ({"evaluate": {"normalize_query": 1}}, r"`evaluate\.normalize_query` must be true or false"),
        (
            {"label": {"frame_alignment": "late"}},
            r"`label\.frame_alignment` must be one of \['official', 'annotation'\]",
        ),
        ({"label": {"box_convention": "plus_one"}}, r"`label\.box_convention` must be one of"),
        ({"label": {"tie_break": "random"}}, r"`label\.tie_break` must be one of"),
        ({"prompt": {"label_placement": "corner"}}, r"`prompt\.label_placement` must be one of"),
    ],
)
def test_impossible_values_fail_with_key_and_fix(raw: dict, pattern: str) -> None:
    with pytest.raises(ParamsError, match=pattern):
        params_from_dict(raw)


def test_fidelity_options_are_validated_when_built_directly_too() -> None:
    from stvg.config import EvaluateParams, LabelParams, PromptParams, TrainParams

    for build, key in (
        (lambda: LabelParams(frame_alignment="late"), "label.frame_alignment"),  # type: ignore[arg-type]
        (lambda: LabelParams(tie_break="random"), "label.tie_break"),  # type: ignore[arg-type]
        (lambda: TrainParams(answer_parser="loose"), "train.answer_parser"),  # type: ignore[arg-type]
        (lambda: EvaluateParams(answer_parser="loose"), "evaluate.answer_parser"),  # type: ignore[arg-type]
        (lambda: PromptParams(label_placement="corner"), "prompt.label_placement"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            build()


def test_ints_are_accepted_for_floats_but_not_bools() -> None:
    assert params_from_dict({"prompt": {"fps": 2}}).prompt.fps == 2.0
    with pytest.raises(ParamsError, match="must be a number"):
        params_from_dict({"prompt": {"fps": True}})


def test_flatten_roundtrip_of_all_sections() -> None:
    flat = flatten(params_to_dict(params_from_dict({})))
    assert flat["prompt.redetect_every"] == 15
    assert flat["registry.model_name"] == "stvg-r1"


def test_paper_overrides_apply_in_place_keeping_comments(repo_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    shutil.copyfile(repo_root / "params.yaml", target)
    changed = apply_overrides(target, repo_root / "params.paper.yaml")
    p = load_params(target)
    assert p.prompt.backend == "sam2" and p.train.grpo["num_generations"] == 8
    assert "prompt.backend" in changed
    assert "# cpu (per-frame YOLO + BYTETrack)" in target.read_text()


def test_invalid_override_never_reaches_params(repo_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    shutil.copyfile(repo_root / "params.yaml", target)
    before = target.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"prompt": {"redetect_every": 0}}))
    with pytest.raises(ParamsError):
        apply_overrides(target, bad)
    assert target.read_text() == before


def test_every_stage_reports_bad_params_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stvg.cli import main

    bad = tmp_path / "params.yaml"
    bad.write_text("prompt:\n  redetect_every: 0\n")
    assert main(["label", "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stvg label:" in err and "prompt.redetect_every" in err and "Traceback" not in err
