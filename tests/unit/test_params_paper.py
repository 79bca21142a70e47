"""The paper-scale params files: applied to params.yaml they give numbers that stay numbers, every stage
builds its config from them (TRL's GRPOConfig included), and GRPO batches as the official trainer does."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from stvg.config import ParamsError, apply_overrides, load_params, params_from_dict, yaml11_float_text
from stvg.training.batching import batch_semantics

PAPER = "params.paper.yaml"
ONE_GPU = "params.paper.1gpu.yaml"
FIRST = "params.paper.first.yaml"


def _applied(repo_root: Path, tmp_path: Path, *overrides: str) -> Path:
    target = tmp_path / "params.yaml"
    shutil.copyfile(repo_root / "params.yaml", target)
    for name in overrides:
        apply_overrides(target, repo_root / name)
    return target


@pytest.mark.parametrize("value", [1e-06, 1e-6 * 3, 2.5e-05, 1e20, 1e-300, 0.5, 3.0, 123456789.0, -4e-08])
def test_floats_written_by_apply_read_back_as_the_same_numbers(tmp_path: Path, value: float) -> None:
    target = tmp_path / "params.yaml"
    target.write_text("train:\n  grpo:\n    learning_rate: 1.0e-4  # a comment\n")
    over = tmp_path / "over.yaml"
    over.write_text(f"train:\n  grpo:\n    learning_rate: {yaml11_float_text(value)}\n")
    apply_overrides(target, over)
    back = yaml.safe_load(target.read_text())["train"]["grpo"]
    assert type(back["learning_rate"]) is float and back["learning_rate"] == value
    assert "# a comment" in target.read_text()


def test_an_overrides_file_with_a_number_as_text_is_refused_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_text("train:\n  grpo:\n    learning_rate: 1.0e-4\n")
    over = tmp_path / "over.yaml"
    over.write_text("train:\n  grpo:\n    learning_rate: 1e-06\n")  # text in YAML 1.1
    with pytest.raises(ParamsError, match=r"write 1\.0e-06"):
        apply_overrides(target, over)
    assert target.read_text() == "train:\n  grpo:\n    learning_rate: 1.0e-4\n"


def test_overrides_apply_on_top_of_each_other_whatever_the_list_styles(
    repo_root: Path, tmp_path: Path
) -> None:
    """A list written by one apply (``classes: [person]``) replaced by the next: the file parses back,
    only the named keys change, and each key keeps its comment on its line."""
    target = _applied(repo_root, tmp_path, PAPER, ONE_GPU, FIRST)
    before = yaml.safe_load(target.read_text())
    over = tmp_path / "over.yaml"
    over.write_text(
        "detector:\n  classes: []\nevaluate:\n  iou_thresholds: [0.5]\n"
        "download:\n  sources:\n    - {name: a, kind: local, path: /x, dest: hcstvg_v2}\n"
    )
    changed = apply_overrides(target, over)
    assert changed == ["detector.classes", "evaluate.iou_thresholds", "download.sources"]
    after = yaml.safe_load(target.read_text())
    expected = {**before, "detector": {**before["detector"], "classes": []}}
    expected["evaluate"] = {**before["evaluate"], "iou_thresholds": [0.5]}
    expected["download"] = {**before["download"], "sources": [{"name": "a", "kind": "local", "path": "/x"}]}
    expected["download"]["sources"][0]["dest"] = "hcstvg_v2"
    assert after == expected
    lines = target.read_text().splitlines()
    assert any(line.startswith("  classes: []") and "# class-name filter" in line for line in lines)
    assert load_params(target).detector.classes == ()
    over.write_text("detector:\n  classes: [person, car]\n")
    apply_overrides(target, over)
    assert any(line.startswith("  classes: [person, car]") for line in target.read_text().splitlines())


def test_paper_apply_writes_the_learning_rate_as_a_number(repo_root: Path, tmp_path: Path) -> None:
    target = _applied(repo_root, tmp_path, PAPER)
    raw = yaml.safe_load(target.read_text())
    assert raw["train"]["grpo"]["learning_rate"] == pytest.approx(1e-6)
    assert isinstance(raw["train"]["grpo"]["learning_rate"], float)


def test_a_number_left_as_text_is_refused_with_the_fix() -> None:
    with pytest.raises(ParamsError, match=r"train\.grpo\.learning_rate.*'1e-06'.*write 1\.0e-06"):
        params_from_dict({"train": {"grpo": {"learning_rate": "1e-06"}}})
    with pytest.raises(ParamsError, match=r"prompt\.sampling\.fps.*'2e0'.*write 2\.0"):
        params_from_dict({"prompt": {"sampling": {"fps": "2e0"}}})
    assert (
        params_from_dict({"train": {"grpo": {"optim": "adamw_torch"}}}).train.grpo["optim"] == "adamw_torch"
    )


@pytest.mark.parametrize("section", ["prompt", "detector", "evaluate"])
def test_devices_are_validated_per_section(section: str) -> None:
    assert getattr(params_from_dict({}), section).device == "auto"
    assert getattr(params_from_dict({section: {"device": "cuda:1"}}), section).device == "cuda:1"
    with pytest.raises(ParamsError, match=rf"`{section}\.device` must be one of auto \| cpu \| cuda"):
        params_from_dict({section: {"device": "gpu"}})


def _grpo_args(params, tmp_path: Path):
    from stvg.training.rewards import build_reward_funcs
    from stvg.training.train import grpo_config

    _, weights = build_reward_funcs(params.train.reward_weights)
    return grpo_config(params.train, tmp_path / "ckpt", weights, ["none"])


@pytest.mark.parametrize(
    ("files", "processes"), [((PAPER,), 8), ((PAPER, ONE_GPU), 1), ((PAPER, ONE_GPU, FIRST), 1)]
)
def test_paper_sets_build_every_stage_config_and_batch_like_the_official_trainer(
    repo_root: Path, tmp_path: Path, files: tuple[str, ...], processes: int
) -> None:
    from stvg.evaluation.metrics import get_protocol
    from stvg.prompting.backends import output_params

    params = load_params(_applied(repo_root, tmp_path, *files))
    assert params.prompt.backend == "sam2" and params.prompt.device == "cuda"
    assert params.detector.weights == "weights/yolo12x.pt" and params.detector.classes == ("person",)
    assert output_params(params.prompt, "cuda")["device"] == "cuda"
    assert params.prompt.executor == "ray" and params.prompt.ray.gpus_per_task == 1
    assert params.prompt.ray.address == ("auto" if processes == 8 else "")  # one GPU: a one-node cluster
    e = params.evaluate
    assert get_protocol(e.protocol, threshold_op=e.threshold_op, iou_thresholds=e.iou_thresholds)
    args = _grpo_args(params, tmp_path)
    assert type(args.learning_rate) is float and math.isclose(args.learning_rate, 1e-6)
    assert args.num_generations == 8 and args.beta == 0.04 and args.temperature == 1.0
    semantics = batch_semantics(args, num_processes=processes)
    # the official trainer: 8 prompts x 8 completions per optimizer step, one prompt's group per
    # generate call on each process, loss averaged per completion then over completions
    assert semantics.prompts_per_step == 8 and semantics.completions_per_step == 64
    assert semantics.completions_per_generate_call == 8
    assert semantics.loss_type == "grpo" and semantics.loss_normalisation.startswith("per-sequence")
    assert semantics.departures_from_official() == []
    first = FIRST in files  # the first run: a few videos, one optimizer step (of Adafactor, below)
    assert (params.data.max_videos, args.max_steps) == ((8, 1) if first else (0, -1))


def test_the_first_run_target_applies_the_three_sets_in_order(repo_root: Path) -> None:
    import subprocess

    dry = subprocess.run(
        ["make", "-n", "paper-1gpu-first"], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    applied = [line.split()[-1] for line in dry.replace("&&", "\n").splitlines() if "params apply" in line]
    assert applied == [PAPER, ONE_GPU, FIRST]


def test_trl_defaults_depart_from_the_official_batching(repo_root: Path, tmp_path: Path) -> None:
    """What params.paper.yaml used to say (batch 1 per device, no accumulation, TRL's loss default)."""
    params = params_from_dict(
        {"train": {"grpo": {"num_generations": 8, "per_device_train_batch_size": 8, "max_steps": 1}}}
    )
    semantics = batch_semantics(_grpo_args(params, tmp_path), num_processes=1)
    assert semantics.prompts_per_step == 1 and semantics.loss_type == "dapo"
    assert len(semantics.departures_from_official()) == 2


@pytest.mark.parametrize("name", ["zero3.yaml", "zero3_offload.yaml"])
def test_deepspeed_configs_take_the_accumulation_from_train_grpo(
    repo_root: Path, name: str, monkeypatch
) -> None:
    """A fixed DeepSpeed gradient_accumulation_steps that differs from train.grpo's (8 or 64 in the paper
    sets) stops the Trainer with a mismatch error; "auto" takes the Trainer's value."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    monkeypatch.delenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", raising=False)
    cfg = load_config_from_file(str(repo_root / "configs" / "accelerate" / name))
    assert "gradient_accumulation_steps" not in cfg.deepspeed_config
    plugin = DeepSpeedPlugin(**cfg.deepspeed_config)
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"


def test_the_first_run_fits_one_80_gb_gpu_and_the_paper_optimizer_does_not(
    repo_root: Path, tmp_path: Path
) -> None:
    """`make paper-1gpu-first && make run` trains without ZeRO: its optimizer must leave room on an H100."""
    from stvg.training.memory import GIB, GpuMemoryError, check_fits, static_memory
    from tests.unit.test_training_memory import H100_BYTES, qwen25_vl_7b_params

    n = qwen25_vl_7b_params()
    held = {}
    for files in ((PAPER, ONE_GPU), (PAPER, ONE_GPU, FIRST)):
        params = load_params(_applied(repo_root, tmp_path, *files))
        args = _grpo_args(params, tmp_path)
        held[files[-1]] = static_memory(n, n, 2, args.optim.value, with_reference=args.beta != 0)
    assert held[FIRST] is not None and held[FIRST].optim == "adafactor"
    check_fits(
        held[FIRST], H100_BYTES, load_params(repo_root / "params.yaml").train.max_static_gpu_fraction, "h100"
    )
    assert held[ONE_GPU] is not None and held[ONE_GPU].total > 0.9 * H100_BYTES  # AdamW: ZeRO-3 offload
    with pytest.raises(GpuMemoryError):
        check_fits(held[ONE_GPU], H100_BYTES, 0.9, "h100")
    assert held[ONE_GPU].total / GIB > 75


def test_applying_the_paper_sets_again_keeps_the_detector_pin(repo_root: Path, tmp_path: Path) -> None:
    """`make paper-1gpu-first` run a second time after `stvg weights fetch yolo12x --pin-in params.yaml`."""
    target = _applied(repo_root, tmp_path, PAPER, ONE_GPU, FIRST)
    pinned = yaml.safe_load(target.read_text())
    pinned["detector"]["weights_sha256"] = "ab" * 32
    target.write_text(yaml.safe_dump(pinned, sort_keys=False))
    for name in (PAPER, ONE_GPU, FIRST):
        apply_overrides(target, repo_root / name)
    again = yaml.safe_load(target.read_text())
    assert again["detector"]["weights_sha256"] == "ab" * 32
    assert again["detector"]["weights"] == "weights/yolo12x.pt"


def test_the_first_run_gates_tolerate_a_failure_at_its_sample_count(repo_root: Path, tmp_path: Path) -> None:
    """Fractions on 8 samples per split: each gate must let at least one sample fail (and not all)."""
    params = load_params(_applied(repo_root, tmp_path, PAPER, ONE_GPU, FIRST))
    n = params.data.max_videos
    allowed = {  # failures a gate lets through: "at most this fraction" / "at least this parse rate"
        "prompt": math.floor(params.prompt.max_failed_fraction * 2 * n + 1e-9),  # both splits prompted
        "label": math.floor(params.label.max_drop_fraction * n + 1e-9),
        "evaluate": math.floor((1 - params.evaluate.min_parse_rate) * n + 1e-9),
    }
    assert n == 8 and all(1 <= k <= n // 4 for k in allowed.values()), allowed
    (tmp_path / "paper").mkdir()
    paper = load_params(_applied(repo_root, tmp_path / "paper", PAPER))
    assert paper.evaluate.min_parse_rate == 0.9  # the full run keeps the paper set's bars
