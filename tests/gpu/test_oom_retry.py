"""GPU out-of-memory during SAM2 prompting: retried with state offload and a halved window, recorded in
the video's summary (``sam2.oom_retries``, ``sam2.window``), and the GPU usable afterwards. Once injected (any device), once real: the caching
allocator capped (``torch.cuda.set_per_process_memory_fraction``) between what a small window and a
large window without offload reserve (the cap limits reserved, not allocated, memory), so only the
large one fails."""

from __future__ import annotations

import pytest

from benchmarks.gpu_scene import FixedPrompts, Scene
from tests.gpu.conftest import cuda_only

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


def _params(sam2_size: int, window: int, offload: bool):
    from stvg.config import PromptParams, RepairParams, Sam2Params

    sam2 = Sam2Params(cfg=TINY, image_size=sam2_size, window=window, offload_to_cpu=offload, redetect_every=5)
    return PromptParams(backend="sam2", sam2=sam2, repair=RepairParams(enabled=False, min_track_frames=1))


def _prompt(scene: Scene, p, device: str, make_session=None):
    from stvg.prompting.backends.sam2 import Sam2Backend
    from stvg.prompting.backends.sam2.session import Sam2Segmenter, Sam2Session, build_predictor
    from stvg.prompting.engine import prompt_video

    predictor = build_predictor(p.sam2.cfg, "", device, p.sam2.image_size, 0)
    session = make_session(predictor) if make_session else (lambda offload: Sam2Session(predictor, offload))
    backend = Sam2Backend(
        p.sam2, p.detect, device=device, session=session, segmenter=Sam2Segmenter(predictor)
    )
    return prompt_video(scene, p, FixedPrompts(scene), backend=backend)


def test_injected_oom_is_retried_with_a_halved_window(
    device: str, sam2_size: int, clip_frames: int, gpu_usable: None
) -> None:
    import torch

    from stvg.prompting.backends.sam2.session import Sam2Session

    starts: list[tuple[int, bool]] = []

    def failing_once(predictor):
        def make(offload: bool):
            session = Sam2Session(predictor, offload_to_cpu=offload)
            start = session.start

            def start_or_oom(frames, first_frame=0):
                starts.append((len(frames), session.offload))
                if len(starts) == 1:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
                start(frames, first_frame)

            session.start = start_or_oom
            return session

        return make

    scene = Scene(clip_frames, 120, 160, fps=10.0)
    result = _prompt(scene, _params(sam2_size, window=8, offload=False), device, failing_once)
    assert result.summary["sam2"]["oom_retries"] == 1 and result.summary["sam2"]["window"] == 4
    assert starts[0] == (min(8, clip_frames), False)  # the first window, state on the device
    assert starts[1] == (min(4, clip_frames), True)  # retried: halved window, state offloaded
    assert result.summary["tracked_frames"] == clip_frames and result.summary["instances"] >= 1


@cuda_only
def test_real_cuda_oom_under_a_memory_cap_is_retried_and_leaves_the_gpu_usable(
    clip_frames: int, gpu_usable: None
) -> None:
    import torch

    scene = Scene(clip_frames, 120, 160, fps=10.0)
    size, small, large = 1024, 4, 32

    def peak_reserved(window: int) -> int:  # the memory fraction caps what the allocator reserves
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _prompt(scene, _params(size, window, offload=False), "cuda")
        torch.cuda.synchronize()
        return torch.cuda.max_memory_reserved()

    need_small, need_large = peak_reserved(small), peak_reserved(large)
    # without offload every frame of a window sits on the GPU (12 MiB per 1024-px frame, plus its state)
    assert need_large - need_small > (large - small) * 8 * 2**20, (need_small, need_large)
    total = torch.cuda.get_device_properties(0).total_memory
    cap = need_small + (need_large - need_small) // 2
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        result = _prompt(scene, _params(size, large, offload=False), "cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert result.summary["sam2"]["oom_retries"] >= 1, "the cap did not cause an out-of-memory error"
    assert result.summary["sam2"]["window"] <= large // 2
    assert result.summary["tracked_frames"] == clip_frames
    # usable afterwards: a large allocation, and the same prompting without any retry
    big = torch.empty(int(0.25 * total) // 4, dtype=torch.float32, device="cuda").fill_(1.0)
    assert float(big[:1024].sum()) == 1024.0
    del big
    again = _prompt(scene, _params(size, large, offload=False), "cuda")
    assert again.summary["sam2"]["oom_retries"] == 0
