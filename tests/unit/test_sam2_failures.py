"""GPU failures on the SAM2 path: out-of-memory (incl. cuDNN/cuBLAS allocation failures) is retried with
a halved window; a sticky CUDA error ends the run instead of failing every later video."""

from __future__ import annotations

import json

import pytest

from stvg.prompting.backends.sam2.oom import DeviceFailure, classify, with_retries


class OutOfMemoryError(RuntimeError):
    """Named like torch's (torch.OutOfMemoryError subclasses RuntimeError)."""


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (OutOfMemoryError("allocation failed"), "oom"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), "oom"),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), "oom"),
        (
            RuntimeError(
                "cuDNN Frontend error: [cudnn_frontend] Error: No execution plans support the graph."
            ),
            "",
        ),
        (RuntimeError("FIND was unable to find an engine to execute this computation"), "oom"),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "sticky"),
        (RuntimeError("CUDA error: device-side assert triggered"), "sticky"),
        (RuntimeError("CUDA error: unspecified launch failure"), "sticky"),
        (RuntimeError("shape mismatch"), ""),
    ],
)
def test_errors_are_classified(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


# torch's footers on CUDA errors (c10/cuda: CUDA_KERNEL_ASSERT hints; builds with and without DSA)
CUDA_FOOTERS = (
    (
        "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace "
        "below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
        "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n"
    ),
    (
        "Search for `cudaErrorMemoryAllocation' in https://docs.nvidia.com/cuda/cuda-runtime-api/group__"
        "CUDART__TYPES.html for more information.\nDevice-side assertions were explicitly omitted for this "
        "error check; the error probably arose while initializing the DSA handlers."
    ),
)


@pytest.mark.parametrize("footer", CUDA_FOOTERS)
@pytest.mark.parametrize(
    ("first_line", "kind"),
    [
        ("CUDA error: out of memory", "oom"),
        ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "oom"),
        ("CUDA error: too many resources requested for launch", ""),
        ("CUDA error: an illegal memory access was encountered", "sticky"),
        ("CUDA error: device-side assert triggered", "sticky"),
    ],
)
def test_torchs_footer_on_cuda_errors_does_not_decide_the_kind(
    footer: str, first_line: str, kind: str
) -> None:
    assert classify(RuntimeError(f"{first_line}\n{footer}")) == kind


def test_an_allocator_out_of_memory_is_recoverable_whatever_its_message_says() -> None:
    assert classify(OutOfMemoryError("CUDA out of memory.\nCompile with `TORCH_USE_CUDA_DSA` ...")) == "oom"


def test_out_of_memory_is_retried_with_half_the_window_and_offload() -> None:
    seen: list[tuple[int, bool]] = []

    def run(window: int, offload: bool) -> str:
        seen.append((window, offload))
        if window > 16:
            raise RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")
        return "done"

    assert with_retries(run, 64, False) == ("done", 16, 2)
    assert seen == [(64, False), (32, True), (16, True)]


def test_a_retry_keeps_nothing_of_the_failed_attempt(caplog: pytest.LogCaptureFixture) -> None:
    """The failed attempt's locals (its GPU tensors on CUDA) are freed before the retry, even with a log
    handler that keeps every record (pytest's; a queue handler): the record holds the message only."""
    import logging
    import weakref

    class Tensor:
        """Stands for the window's frames on the GPU."""

    attempts: list[weakref.ref] = []

    def run(window: int, offload: bool) -> str:
        frames = Tensor()
        attempts.append(weakref.ref(frames))
        if len(attempts) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return "done"

    with caplog.at_level(logging.WARNING):
        assert with_retries(run, 64, False) == ("done", 32, 1)
    assert attempts[0]() is None
    record = next(r for r in caplog.records if "out of memory" in r.getMessage())
    assert "Tried to allocate 2.00 GiB" in record.getMessage() and "more detail" not in record.getMessage()
    assert not any(isinstance(arg, BaseException) for arg in record.args or ())


def test_retries_end_and_other_errors_pass_through() -> None:
    def oom(window: int, offload: bool) -> None:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        with_retries(oom, 64, True)  # 64 -> 32 -> 16 -> 8, then it gives up
    with pytest.raises(RuntimeError, match="out of memory"):
        with_retries(oom, 2, True)  # nothing left to halve

    def bug(window: int, offload: bool) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        with_retries(bug, 64, True)


def test_a_sticky_cuda_error_is_not_retried() -> None:
    calls: list[int] = []

    def illegal(window: int, offload: bool) -> None:
        calls.append(window)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(DeviceFailure, match="re-run to resume"):
        with_retries(illegal, 64, True)
    assert calls == [64]


@pytest.mark.slow
def test_the_stage_stops_on_a_device_failure_keeps_what_it_wrote_and_resumes(tmp_path, monkeypatch) -> None:
    from stvg.prompting import backends
    from stvg.prompting import detector as detector_module
    from stvg.prompting.maskdb import MaskDB
    from stvg.stages import prompt as stage
    from tests.stages.test_prompt import ColourDetector, write_squares

    monkeypatch.setattr(detector_module, "YoloDetector", ColourDetector)
    real_build = backends.build_backend
    tracked: list[int] = []

    class Failing:
        """The real stand-in, whose GPU 'breaks' on the second video."""

        def __init__(self, *args, **kwargs) -> None:
            self.inner = real_build(*args, **kwargs)
            self.name, self.similarity = self.inner.name, self.inner.similarity

        def track(self, source, detector):
            tracked.append(1)
            if len(tracked) == 2:
                raise DeviceFailure("CUDA error: an illegal memory access was encountered")
            return self.inner.track(source, detector)

        def complete(self, *args):
            return self.inner.complete(*args)

        def close(self):
            self.inner.close()

    monkeypatch.setattr(backends, "build_backend", Failing)
    videos = [write_squares(tmp_path / f"{k}.mp4", seed=i) for i, k in enumerate("abc")]
    (tmp_path / "w.pt").write_bytes(b"w")
    argv = ["--detector", str(tmp_path / "w.pt"), "--out", str(tmp_path / "prompt"), "--videos"]
    argv += [*map(str, videos), "--params", str(tmp_path / "params.yaml")]
    (tmp_path / "params.yaml").write_text("{}\n")
    assert stage.main(argv) == 3
    summary = json.loads((tmp_path / "prompt" / "summary.json").read_text())
    assert "illegal memory access" in summary["device_failure"]
    assert [f["video_id"] for f in summary["failures"]] == ["b.mp4"]
    assert len(tracked) == 2, "c.mp4 was not attempted on the broken device"
    assert MaskDB(tmp_path / "prompt").video_ids() == ["a.mp4"]
    monkeypatch.setattr(backends, "build_backend", real_build)
    assert stage.main(argv) == 0
    report = json.loads((tmp_path / "run_info" / "prompt.json").read_text())
    assert (report["processed"], report["reused"]) == (2, 1)
