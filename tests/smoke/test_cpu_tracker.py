"""CPU backend (the pipeline's detector + GrabCut masks + BoT-SORT with colour ReID + ID repair) on the
synthetic benchmark's validation videos, with the identity-quality bar of ``evaluation.prompt_quality``.

Issue bar: each ground-truth instance covered by one dominant ID on >= 95 % of its visible frames.
The prompt settings are the project's params.yaml. The detector is the detector stage's
(``artifacts/detector/weights.pt``) when dvc.lock says it was trained with the current params and
code (``make run`` produced it), else it is trained here from params.yaml (~4 min on 2 cores), so the
test runs on a fresh clone too and never measures a stale detector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from stvg.config import load_params
from stvg.evaluation.prompt_quality import identity_coverage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def project_params(repo_root: Path):
    return load_params(repo_root / "params.yaml")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def up_to_date_weights(repo: Path) -> Path | None:
    """The detector stage's weights when dvc.lock records them for the current params and code."""
    weights, lock = repo / "artifacts" / "detector" / "weights.pt", repo / "dvc.lock"
    if not (weights.is_file() and lock.is_file()):
        return None
    stage = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages", {}).get("detector", {})
    current = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    locked = stage.get("params", {}).get("params.yaml", {})
    if any(locked.get(k) != current.get(k) for k in ("detector", "synthetic")):
        return None
    if any(_md5(repo / d["path"]) != d.get("md5") for d in stage.get("deps", [])):
        return None
    outs = {o["path"]: o.get("md5") for o in stage.get("outs", [])}
    return weights if outs.get("artifacts/detector/weights.pt") == _md5(weights) else None


@pytest.fixture(scope="session")
def trained_detector(repo_root: Path, project_params, tmp_path_factory: pytest.TempPathFactory):
    from stvg.prompting.detector import YoloDetector

    weights = up_to_date_weights(repo_root)
    if weights is None:
        from stvg.stages import detector as stage

        out = tmp_path_factory.mktemp("detector") / "detector"
        assert stage.main(["--params", str(repo_root / "params.yaml"), "--out", str(out)]) == 0
        weights = out / "weights.pt"
    d = project_params.detector
    return YoloDetector(weights, conf=d.conf, imgsz=d.imgsz, threads=d.threads)


@pytest.fixture(scope="module")
def coverage(trained_detector, project_params) -> list[float]:
    """Dominant-ID coverage of every GT instance of the validation videos (IDs checked consecutive)."""
    from stvg.data.synthetic import build_video
    from stvg.prompting.engine import prompt_video
    from stvg.prompting.video import ArrayFrames

    sp, p = project_params.synthetic, project_params.prompt
    out: list[float] = []
    for i in range(sp.n_val):
        video = build_video(sp, "val", i)
        result = prompt_video(ArrayFrames(video.frames, fps=sp.fps), trained_detector, p, video_id=video.name)
        out += identity_coverage(result.table, video.visible)
        assert list(result.table.instance_id.drop_duplicates().sort_values()) == list(
            range(1, result.summary["instances"] + 1)
        )
    a = np.asarray(out)
    print(
        f"\nCPU backend identity coverage over {len(a)} GT instances: min {a.min():.3f} "
        f"mean {a.mean():.3f}, {np.mean(a >= 0.95):.0%} of instances >= 0.95"
    )
    return out


def test_cpu_backend_identity_coverage_does_not_regress(coverage: list[float]) -> None:
    """Measured 0.98 mean, 0.94 of the instances >= 0.95 (val + train): a regression floor."""
    a = np.asarray(coverage)
    assert a.mean() >= 0.95
    assert np.median(a) >= 0.98
    assert np.mean(a >= 0.95) >= 0.8


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="open: a shape entering over a same-class one is first detected merged with it (min < 0.95)",
)
def test_cpu_backend_keeps_one_id_per_instance(coverage: list[float]) -> None:
    assert min(coverage) >= 0.95
