"""params.yaml loads into frozen, validated sections; bad keys/types/values name the key and the fix."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from stvg.config import (
    Params,
    ParamsError,
    PromptParams,
    Sam2Params,
    apply_overrides,
    flatten,
    load_params,
    params_from_dict,
    params_to_dict,
)

SAM2 = {"backend": "sam2"}


def test_repo_params_load_and_are_frozen(repo_root: Path) -> None:
    p = load_params(repo_root / "params.yaml")
    assert p.prompt.backend == "synthetic_cpu" and p.prompt.synthetic_cpu.tracker == "botsort"
    assert p.data.dataset == "synthetic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.prompt.repair.min_track_frames = 3  # type: ignore[misc]


def test_unknown_key_names_the_key_and_the_valid_ones() -> None:
    with pytest.raises(
        ParamsError,
        match=r"prompt\.repair\.min_track_frame\b.*valid keys under `prompt\.repair`.*min_track_frames",
    ):
        params_from_dict({"prompt": {"repair": {"min_track_frame": 2}}})


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(ParamsError, match="unknown key.*promt"):
        params_from_dict({"promt": {}})


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ({"prompt": SAM2 | {"sam2": {"redetect_every": 0}}}, r"`prompt\.sam2\.redetect_every` must be >= 1"),
        (
            {"prompt": SAM2 | {"sam2": {"redetect_every": "15"}}},
            r"`prompt\.sam2\.redetect_every` must be an integer",
        ),
        ({"prompt": SAM2 | {"sam2": {"backward": "yes"}}}, r"`prompt\.sam2\.backward` must be true or false"),
        ({"prompt": {"backend": "gpu"}}, r"`prompt\.backend` must be one of \['synthetic_cpu', 'sam2'\]"),
        (
            {"prompt": {"synthetic_cpu": {"split_blob_ratio": 0.8}}},
            r"`prompt\.synthetic_cpu\.split_blob_ratio` must be > 1 .* or 0",
        ),
        (
            {"prompt": {"synthetic_cpu": {"extend_hidden_fraction": 1.5}}},
            r"`prompt\.synthetic_cpu\.extend_hidden_fraction` must be in \[0, 1\]",
        ),
        ({"prompt": {"repair": {"min_track_frames": 0}}}, r"`prompt\.repair\.min_track_frames` must be >= 1"),
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
        (
            {"prompt": {"render": {"label_placement": "corner"}}},
            r"`prompt\.render\.label_placement` must be one of",
        ),
        ({"prompt": {"executor": "dask"}}, r"`prompt\.executor` must be one of \['local', 'ray'\]"),
        ({"prompt": {"ray": {"address": "head-node"}}}, r"`prompt\.ray\.address` must be one of .*HOST:PORT"),
        ({"prompt": {"ray": {"max_retries": -1}}}, r"`prompt\.ray\.max_retries` must be >= 0"),
        ({"prompt": {"ray": {"cpus_per_task": 0}}}, r"`prompt\.ray\.cpus_per_task` must be > 0"),
        ({"prompt": {"ray": {"gpus_per_task": -1}}}, r"`prompt\.ray\.gpus_per_task` must be >= 0"),
        ({"prompt": {"ray": {"max_in_flight": -2}}}, r"`prompt\.ray\.max_in_flight` must be >= 0"),
        ({"prompt": {"ray": {"workers": 4}}}, r"prompt\.ray.*workers"),
    ],
)
def test_impossible_values_fail_with_key_and_fix(raw: dict, pattern: str) -> None:
    with pytest.raises(ParamsError, match=pattern):
        params_from_dict(raw)


def test_fidelity_options_are_validated_when_built_directly_too() -> None:
    from stvg.config import EvaluateParams, LabelParams, RenderParams, TrainParams

    for build, key in (
        (lambda: LabelParams(frame_alignment="late"), "label.frame_alignment"),  # type: ignore[arg-type]
        (lambda: LabelParams(tie_break="random"), "label.tie_break"),  # type: ignore[arg-type]
        (lambda: TrainParams(answer_parser="loose"), "train.answer_parser"),  # type: ignore[arg-type]
        (lambda: EvaluateParams(answer_parser="loose"), "evaluate.answer_parser"),  # type: ignore[arg-type]
        (lambda: RenderParams(label_placement="corner"), "prompt.render.label_placement"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            build()


def test_ints_are_accepted_for_floats_but_not_bools() -> None:
    assert params_from_dict({"prompt": {"sampling": {"fps": 2}}}).prompt.sampling.fps == 2.0
    with pytest.raises(ParamsError, match="must be a number"):
        params_from_dict({"prompt": {"sampling": {"fps": True}}})


def test_flatten_roundtrip_of_all_sections() -> None:
    flat = flatten(params_to_dict(params_from_dict({})))
    assert flat["prompt.sampling.fps"] == 2.0 and flat["prompt.synthetic_cpu.tracker"] == "botsort"
    assert flat["registry.model_name"] == "stvg-r1"


def test_paper_overrides_apply_in_place_keeping_comments(repo_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    shutil.copyfile(repo_root / "params.yaml", target)
    changed = apply_overrides(target, repo_root / "params.paper.yaml")
    p = load_params(target)
    assert p.prompt.backend == "sam2" and p.train.grpo["num_generations"] == 8
    assert p.prompt.sam2.cfg.endswith("sam2.1_hiera_l.yaml") and p.prompt.synthetic_cpu is None
    assert "prompt.backend" in changed
    assert "# synthetic_cpu (flat-colour CPU stand-in" in target.read_text()


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


def test_a_section_of_the_other_backend_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(ParamsError, match=r"`prompt\.sam2` does nothing with prompt\.backend: synthetic_cpu"):
        params_from_dict({"prompt": {"sam2": {"window": 32}}})
    with pytest.raises(ParamsError, match=r"`prompt\.synthetic_cpu` does nothing with prompt\.backend: sam2"):
        params_from_dict({"prompt": {"backend": "sam2", "synthetic_cpu": {"tracker": "bytetrack"}}})
    p = params_from_dict({"prompt": {"backend": "sam2", "synthetic_cpu": None}})
    assert p.prompt.sam2 == Sam2Params() and p.prompt.backend_params is p.prompt.sam2
    assert PromptParams(backend="sam2").synthetic_cpu is None


def _leaves(obj: object, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every non-dataclass field of a params object."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_leaves(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def _comment(doc: object, dotted: str) -> str:
    from ruamel.yaml.comments import CommentedMap

    *parents, key = dotted.split(".")
    node = doc
    for part in parents:
        node = node[part]  # type: ignore[index]
    assert isinstance(node, CommentedMap)
    tokens = node.ca.items.get(key) or []
    return " ".join(t.value for t in tokens if t is not None and hasattr(t, "value"))


def test_params_yaml_and_the_dataclasses_cannot_drift(repo_root: Path) -> None:
    """params.yaml holds the library defaults, except where a key's comment states the library default
    it departs from (and that statement must be true): one source, and no silent second one."""
    from ruamel.yaml import YAML

    loaded, defaults = _leaves(load_params(repo_root / "params.yaml")), _leaves(Params())
    doc = YAML().load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    differ = {k: (loaded[k], defaults[k]) for k in defaults if loaded[k] != defaults[k]}
    for key, (_, default) in differ.items():
        stated = _comment(doc, key)
        assert f"library default: {default!r}".replace("'", "") in stated.replace("'", ""), (
            f"params.yaml's {key} differs from the dataclass default {default!r} without saying so"
        )
    assert set(differ) == {"train.tiny.format_steps", "train.grpo"}
    assert load_params(repo_root / "params.yaml").prompt == PromptParams(), (
        "the prompt section is the default"
    )
