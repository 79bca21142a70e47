"""Policy replicas take whole batches of the one-process run, so greedy answers cannot change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stvg.config import EvaluateParams
from stvg.evaluation.replicas import shards


@pytest.mark.parametrize(("n", "batch", "replicas"), [(10, 4, 2), (9, 2, 4), (3, 4, 2), (8, 1, 3), (0, 4, 2)])
def test_shards_are_contiguous_runs_of_whole_batches(n: int, batch: int, replicas: int) -> None:
    parts = shards(n, batch, replicas)
    assert [i for part in parts for i in part] == list(range(n)), "every item once, in order"
    assert len(parts) <= replicas
    assert all(part.start % batch == 0 for part in parts), "each replica starts on a batch boundary"


def test_dvc_tracks_every_evaluate_key_but_the_operational_ones(repo_root: Path) -> None:
    listed = yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["evaluate"][
        "params"
    ]
    keys = {p.removeprefix("evaluate.") for p in listed if p.startswith("evaluate.")}
    assert keys == set(EvaluateParams.__dataclass_fields__) - {"replicas", "ray"} and "evaluate" not in listed
