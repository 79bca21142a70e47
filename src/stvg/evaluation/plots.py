"""Evaluation pictures: tIoU histogram and the vIoU@R curve of every policy (PNG, logged to MLflow)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stvg.io import atomic_path


def viou_curve(viou: Sequence[float], thresholds: np.ndarray) -> np.ndarray:
    """Fraction of samples with vIoU >= R for each R (the recall curve behind vIoU@0.3 / @0.5)."""
    v = np.asarray(viou, dtype=np.float64)
    if v.size == 0:
        return np.zeros_like(thresholds)
    return (v[None, :] >= thresholds[:, None]).mean(axis=1)


def write_plots(per_policy: Mapping[str, Mapping[str, Sequence[float]]], out_dir: Path) -> list[Path]:
    """``per_policy[name] = {"tiou": [...], "viou": [...]}`` -> tiou_hist.png, viou_curve.png in out_dir."""
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
        ax.plot(r, viou_curve(scores["viou"], r), label=name)
    ax.set(xlabel="R", ylabel="fraction with vIoU >= R", title="vIoU@R (strict)", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend()
    paths.append(_save(fig, out_dir / "viou_curve.png"))
    return paths


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
