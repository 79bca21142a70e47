"""Device resolution (`auto` picks CUDA when present; CUDA asked for without a GPU is an error naming the
key), the device kind in the prompt stage's entry key, and SAM2's hole-filling report."""

from __future__ import annotations

from pathlib import Path

import pytest

from stvg import runtime


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)


@pytest.fixture
def one_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(no_cuda) -> None:
    assert runtime.resolve_device("auto") == "cpu"
    assert runtime.resolve_device("cpu") == "cpu"


def test_auto_picks_cuda_when_torch_sees_a_gpu(one_cuda) -> None:
    assert runtime.resolve_device("auto") == "cuda"
    assert runtime.resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match=r"`evaluate\.device: cuda:1` but only 1 CUDA device"):
        runtime.resolve_device("cuda:1", "evaluate.device")


def test_cuda_without_a_gpu_names_the_key_and_the_fix(no_cuda) -> None:
    with pytest.raises(
        ValueError, match=r"`prompt\.device: cuda` but torch sees no CUDA GPU.*use `auto` or `cpu`"
    ):
        runtime.resolve_device("cuda", "prompt.device")
    with pytest.raises(ValueError, match=r"`prompt\.device` must be one of auto \| cpu \| cuda"):
        runtime.resolve_device("tpu", "prompt.device")


def test_the_device_kind_not_its_spelling_keys_the_mask_database() -> None:
    from stvg.config import params_from_dict
    from stvg.prompting.backends import output_params

    auto = params_from_dict({"prompt": {"device": "auto"}})
    explicit = params_from_dict({"prompt": {"device": "cuda:0"}})
    assert output_params(auto.prompt, "cuda")["device"] == "cuda"
    assert output_params(auto.prompt, "cuda") == output_params(
        explicit.prompt, "cuda:1"
    )  # same outputs, same key
    assert output_params(auto.prompt, "cpu") != output_params(auto.prompt, "cuda")
    sam2 = params_from_dict({"prompt": {"backend": "sam2"}})
    assert output_params(sam2.prompt, "cpu")["sam2_hole_filling"] is False
    assert "sam2_hole_filling" not in output_params(auto.prompt, "cpu")


def test_hole_filling_is_reported_with_its_reason(monkeypatch) -> None:
    assert runtime.sam2_hole_filling("cpu").startswith("off: the CPU")
    monkeypatch.setattr(runtime, "sam2_extension_built", lambda: False)
    assert "SAM2_BUILD_CUDA=1" in runtime.sam2_hole_filling("cuda")
    monkeypatch.setattr(runtime, "sam2_extension_built", lambda: True)
    assert runtime.sam2_hole_filling("cuda:0") == "on"


def test_this_install_reports_whether_sam2_c_is_built() -> None:
    pytest.importorskip("sam2")
    try:
        from sam2 import _C  # noqa: F401

        built = True
    except ImportError:
        built = False
    assert runtime.sam2_extension_built() is built


@pytest.mark.parametrize("stage", ["prompt", "evaluate", "detector"])
def test_stages_refuse_cuda_without_a_gpu_in_one_line(stage, no_cuda, tmp_path, capsys) -> None:
    from stvg.cli import main

    params = tmp_path / "params.yaml"
    params.write_text(f"{stage}:\n  device: cuda\n")
    weights = tmp_path / "det.pt"
    weights.write_bytes(b"x")
    extra = {
        "prompt": [
            "--detector",
            str(weights),
            "--videos",
            str(tmp_path / "v.mp4"),
            "--out",
            str(tmp_path / "o"),
        ],
        "evaluate": ["--out", str(tmp_path / "o")],
        "detector": ["--out", str(tmp_path / "o")],
    }[stage]
    code = main([stage, "--params", str(params), *extra])
    err = capsys.readouterr().err
    assert code in (1, 2) and f"{stage}.device: cuda" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_grpo_on_cuda_without_a_c_compiler_fails_before_any_model_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        pytest.skip("no triton here: TRL's CUDA loss kernels are not built on such a host")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc, no clang
    assert runtime.triton_c_compiler() is None
    with pytest.raises(RuntimeError, match=r"C compiler.*apt-get install gcc, or set CC"):
        runtime.require_triton_compiler("cuda:0")
    runtime.require_triton_compiler("cpu")  # the CPU path compiles nothing

    gcc = tmp_path / "gcc"
    gcc.write_text("#!/bin/sh\n")
    gcc.chmod(0o755)
    assert runtime.triton_c_compiler() == str(gcc)  # found on PATH as Triton finds it
    runtime.require_triton_compiler("cuda")
    monkeypatch.setenv("CC", "/opt/cc")
    assert runtime.triton_c_compiler() == "/opt/cc"  # $CC first, as in Triton


def test_grpo_on_cuda_without_python_headers_fails_before_any_model_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        pytest.skip("no triton here: TRL's CUDA loss kernels are not built on such a host")
    monkeypatch.setenv("CC", "/usr/bin/cc")
    headers = tmp_path / "include" / "Python.h"
    monkeypatch.setattr(runtime, "python_headers", lambda: headers)
    with pytest.raises(RuntimeError, match=r"headers.*Python\.h.*python3-dev"):
        runtime.require_triton_compiler("cuda")
    headers.parent.mkdir()
    headers.write_text("")
    runtime.require_triton_compiler("cuda")


def test_one_training_process_seeing_several_gpus_is_refused_naming_the_fix() -> None:
    with pytest.raises(RuntimeError, match="sees 2 GPUs") as err:
        runtime.require_one_gpu_per_process(2)
    assert "CUDA_VISIBLE_DEVICES=0" in str(err.value) and "accelerate" in str(err.value)
    runtime.require_one_gpu_per_process(1)  # one GPU, or a rank of a launched run
    runtime.require_one_gpu_per_process(0)  # the CPU
