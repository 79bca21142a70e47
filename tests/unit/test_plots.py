"""The vIoU@R curve uses the protocol's threshold operator, so it passes through the reported vIoU@R."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stvg.evaluation.metrics import TubeScores, aggregate_tubes, get_protocol
from stvg.evaluation.plots import viou_curve, write_plots


def test_curve_counts_ties_only_with_greater_or_equal() -> None:
    viou = [0.3, 0.5, 0.5, 0.9]
    r = np.array([0.3, 0.5])
    assert viou_curve(viou, r, ">").tolist() == [0.75, 0.25]
    assert viou_curve(viou, r, ">=").tolist() == [1.0, 0.75]
    assert viou_curve([], r, ">=").tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", ["official", "stvg-r1"])
def test_curve_matches_the_protocols_viou_at_r(name: str) -> None:
    protocol = get_protocol(name)
    viou = np.array([0.0, 0.3, 0.5, 0.7])
    agg = aggregate_tubes(TubeScores(np.zeros(4), viou, np.zeros(4, dtype=np.int8)), protocol)
    curve = viou_curve(viou, np.array([0.3, 0.5]), protocol.threshold_op)
    assert curve.tolist() == [agg["vIoU@0.3"], agg["vIoU@0.5"]]


def test_write_plots_writes_both_pictures(tmp_path: Path) -> None:
    paths = write_plots({"p": {"tiou": [0.1, 0.9], "viou": [0.3, 0.5]}}, tmp_path, threshold_op=">=")
    assert [p.name for p in paths] == ["tiou_hist.png", "viou_curve.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
