"""The prompt stage on the GPU: SAM2.1 tiny and large (random weights, the real architectures) on short
synthetic clips, with the device chosen by ``prompt.device: auto`` and recorded in the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gpu_scene import FixedPrompts, Scene
from tests.gpu.conftest import ON_CPU, cuda_only


def _expected_hole_filling(device: str) -> str:
    """What the stage must report, found here independently: SAM2's ``_C`` kernel runs on CUDA only."""
    if device != "cuda":
        return "off: the CPU has no hole-filling kernel"
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        return "off: sam2._C is not built (reinstall sam2 with SAM2_BUILD_CUDA=1 and nvcc)"
    return "on"


pytestmark = [pytest.mark.gpu, pytest.mark.slow]

CONFIGS = {"tiny": "configs/sam2.1/sam2.1_hiera_t.yaml", "large": "configs/sam2.1/sam2.1_hiera_l.yaml"}


@pytest.mark.parametrize("size_name", [pytest.param("large", marks=cuda_only), "tiny"])
def test_prompt_stage_runs_sam2_on_the_device_auto_picks(
    tmp_path: Path, size_name: str, device: str, sam2_size: int, clip_frames: int, gpu_usable: None
) -> None:
    from stvg.config import params_from_dict
    from stvg.prompting.backends.sam2.session import build_predictor
    from stvg.prompting.maskdb import MaskDB
    from stvg.runtime import resolve_device
    from stvg.stages.prompt import run

    params = params_from_dict(
        {
            "prompt": {
                "device": "auto",
                "backend": "sam2",
                "sam2": {
                    "cfg": CONFIGS[size_name],
                    "image_size": sam2_size,
                    "window": 16,
                    "redetect_every": 5,
                },
                "sampling": {"fps": 2.0},
                # ID repair is CPU logic, tested elsewhere; here: SAM2's raw tracks. Random weights may
                # lose an object after its first frame: keep one-frame tracks.
                "repair": {"enabled": False, "min_track_frames": 1},
            }
        }
    )
    if device == "cuda":
        assert resolve_device(params.prompt.device, "prompt.device") == "cuda"  # auto picks the GPU
    scene = Scene(clip_frames, 240, 320, fps=10.0)
    n_videos = 1 if ON_CPU else 2
    videos = {f"clip{i}": scene.write_mp4(tmp_path / f"clip{i}.mp4") for i in range(n_videos)}
    weights = tmp_path / "prompts.bin"  # FixedPrompts replaces YOLO; the file only keys the entries
    weights.write_bytes(b"fixed prompts")
    out = tmp_path / "db"

    summary, report = run(params, videos, weights, out, device, detector=FixedPrompts(scene))

    assert summary["failures"] == [] and report["processed"] == n_videos
    assert report["device"] == device and report["device_kind"] == device
    assert report["sam2_hole_filling"] == _expected_hole_filling(device)
    if device == "cuda":
        assert report["device_name"]
    predictor = build_predictor(CONFIGS[size_name], "", device, sam2_size, params.seed)  # the cached one
    assert predictor.device.type == device and predictor.image_size == sam2_size
    db = MaskDB(out)
    for vid in videos:
        s = db.summary(vid)
        assert s["tracked_frames"] == clip_frames and s["new_ids_after_start"] == 0
        assert 1 <= s["instances"] <= 3  # the three seeded objects, never more (no churn)
        frames = db.sampled_frames(vid)
        assert (
            frames.ndim == 4
            and frames.shape[-1] == 3
            and len(frames) == len(db.sampling(vid)["frame_indices"])
        )
    # content-addressed: a second run on the same device reuses every entry
    _, again = run(params, videos, weights, out, device, detector=FixedPrompts(scene))
    assert again["reused"] == n_videos and again["processed"] == 0
