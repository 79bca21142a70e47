"""The synthetic CPU stand-in through the real prompt and label stages, on the benchmark and held out.

The pipeline's detector, GrabCut masks, BoT-SORT with colour ReID, ID repair and track-end extension,
with the project's params.yaml, over generated videos (mp4, as the pipeline reads them). The bars:
the mean prompting ceiling on the benchmark split >= 0.95 m_vIoU (label stage); and identity
coverage (``evaluation.prompt_quality``: per ground-truth instance, IDF1's identity recall over the
frames on which it is visible and discernible in the pixels) measured on **held-out** videos, a
synthetic seed none of the stand-in's rules was tuned on (the benchmark's 32 videos, which they were
developed on, are reported beside it, not gated at a hair's margin). The detector is the detector stage's
(``artifacts/detector/weights.pt``) when dvc.lock says it was trained with the current params and
code (``make run`` produced it), else it is trained here from params.yaml (~4 min on 2 cores), so the
test runs on a fresh clone too and never measures a stale detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stvg.config import load_params
from stvg.evaluation.prompt_quality import identity_coverage

pytestmark = pytest.mark.slow

HELD_OUT_SEED = 1  # synthetic.seed of scenes no rule of the stand-in was tuned on (the benchmark's is 0)
HELD_OUT_MEAN, HELD_OUT_SHARE = 0.95, 0.90  # declared before the first held-out measurement


@pytest.fixture(scope="session")
def project_params(repo_root: Path):
    return load_params(repo_root / "params.yaml")


def prompt_and_label(root: Path, repo_root: Path, weights: Path, seed: int | None = None) -> Path:
    """Generate the benchmark (``seed``: another synthetic seed) under ``root`` and run the real
    prompt and label stages over every video of both splits."""
    from stvg.config import load_params
    from stvg.data.synthetic import generate_benchmark
    from stvg.stages import label, prompt

    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["max_videos"] = 0  # every video of both splits
    if seed is not None:
        params["synthetic"]["seed"] = seed
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    generate_benchmark(load_params(params_file).synthetic, root / "data" / "synthetic", progress=False)
    common = ["--params", str(params_file), "--data-dir", str(root / "data")]
    assert prompt.main([*common, "--detector", str(weights), "--out", str(root / "prompt")]) == 0
    assert label.main([*common, "--prompt-dir", str(root / "prompt"), "--out", str(root / "label")]) == 0
    return root


def coverage_of(root: Path, synthetic, name: str) -> dict[str, np.ndarray]:
    """Identity coverage of every GT instance of both splits, ``discernible`` (frames where the
    instance's outline does not show are not counted) and ``strict`` (every visible frame)."""
    from stvg.data.synthetic import build_video
    from stvg.prompting.maskdb import MaskDB

    db = MaskDB(root / "prompt")
    out: dict[str, list[float]] = {"discernible": [], "strict": []}
    for split, n in (("val", synthetic.n_val), ("train", synthetic.n_train)):
        for i in range(n):
            video = build_video(synthetic, split, i)  # the same video, with its exact visible masks
            table = db.table(video.name)
            out["discernible"] += identity_coverage(table, video.visible, video.frames)
            out["strict"] += identity_coverage(table, video.visible)
            instances = db.summary(video.name)["instances"]
            assert sorted(table.instance_id.unique()) == list(range(1, instances + 1))
    arrays = {k: np.asarray(v) for k, v in out.items()}
    for kind, a in arrays.items():
        print(
            f"\nstand-in identity coverage, {name} ({kind}) over {len(a)} GT instances: min {a.min():.3f} "
            f"mean {a.mean():.4f}, {np.mean(a >= 0.95):.1%} of instances >= 0.95"
        )
    return arrays


@pytest.fixture(scope="module")
def stage_outputs(repo_root: Path, trained_detector_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real prompt and label stages over the whole benchmark (8 test + 24 train videos)."""
    return prompt_and_label(tmp_path_factory.mktemp("benchmark"), repo_root, trained_detector_path)


@pytest.fixture(scope="module")
def held_out(
    repo_root: Path, trained_detector_path: Path, tmp_path_factory: pytest.TempPathFactory, project_params
):
    """The same over the videos of a synthetic seed the stand-in was never tuned on."""
    import dataclasses

    root = prompt_and_label(
        tmp_path_factory.mktemp("held_out"), repo_root, trained_detector_path, HELD_OUT_SEED
    )
    return coverage_of(root, dataclasses.replace(project_params.synthetic, seed=HELD_OUT_SEED), "held out")


def test_prompting_ceiling_of_the_stand_in_reaches_the_bar(stage_outputs: Path) -> None:
    """Issue bar: mean prompting ceiling >= 0.95 m_vIoU on the benchmark split (measured 0.973)."""
    metrics = json.loads((stage_outputs / "label" / "metrics.json").read_text(encoding="utf-8"))
    print(f"\nprompting ceiling on the benchmark split: m_vIoU {metrics['ceiling_m_vIoU']:.4f}")
    assert metrics["ceiling_m_vIoU"] >= 0.95
    assert metrics["ceiling_m_tIoU"] == pytest.approx(1.0)
    assert metrics["test_drop_fraction"] == 0.0


def test_benchmark_identity_coverage_is_reported(stage_outputs: Path, project_params) -> None:
    """On the 32 videos the rules were developed on: no bar at a hair's margin, a floor against regressions."""
    a = coverage_of(stage_outputs, project_params.synthetic, "benchmark")["discernible"]
    assert len(a) > 100 and a.mean() >= 0.99 and np.mean(a >= 0.95) >= 0.97


def test_held_out_identity_coverage(held_out: dict[str, np.ndarray]) -> None:
    """On unseen scenes the per-instance bar is held on average and by most instances."""
    a = held_out["discernible"]
    assert len(a) > 100
    assert a.mean() >= HELD_OUT_MEAN and np.mean(a >= 0.95) >= HELD_OUT_SHARE
