"""Evaluation pictures: tIoU histogram and the vIoU@R curve of every policy (PNG, logged to MLflow)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stvg.evaluation.metrics import ThresholdOp, passes
from stvg.io import atomic_path


def viou_curve(viou: Sequence[float], thresholds: np.ndarray, threshold_op: ThresholdOp = ">") -> np.ndarray:
    """Fraction of samples with vIoU ``threshold_op`` R for each R.

    The same comparison as the protocol's vIoU@R (``metrics.passes``), so the curve passes through
    the reported vIoU@0.3 / @0.5 exactly.
    """
    v = np.asarray(viou, dtype=np.float64)
    r = np.asarray(thresholds, dtype=np.float64)
    if v.size == 0:
        return np.zeros_like(r)
    return passes(v[None, :], r[:, None], threshold_op).mean(axis=1)


def write_plots(
    per_policy: Mapping[str, Mapping[str, Sequence[float]]], out_dir: Path, threshold_op: ThresholdOp = ">"
) -> list[Path]:
    """``per_policy[name] = {"tiou": [...], "viou": [...]}`` -> tiou_hist.png, viou_curve.png in out_dir.

    ``threshold_op`` is the protocol's (``TubeProtocol.threshold_op``); the default matches the
    default ``official`` protocol.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    for name, scores in per_policy.items():
        ax.hist(scores["tiou"], bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.set(xlabel="temporal IoU", ylabel="samples", title="tIoU per sample")
    ax.legend()
    paths.append(_save(fig, out_dir / "tiou_hist.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    r = np.linspace(0, 1, 101)
    for name, scores in per_policy.items():
        ax.plot(r, viou_curve(scores["viou"], r, threshold_op), label=name)
    ax.set(
        xlabel="R",
        ylabel=f"fraction with vIoU {threshold_op} R",
        title="vIoU@R (strict)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend()
    paths.append(_save(fig, out_dir / "viou_curve.png"))
    return paths


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
