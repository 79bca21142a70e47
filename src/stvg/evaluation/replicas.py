"""Answer generation spread over N policy replicas (Ray actors, one GPU each at paper scale).

Data parallel by whole batches: the single-process run answers ``batch_size`` items at a time, and
replica r gets a contiguous run of those same batches. Every batch therefore holds the same items,
in the same order and with the same left padding as in one process, so under greedy decoding
(``evaluate.do_sample: false``) the answers are identical to the single-process run, and they are
put back in sample order. Under sampling each replica seeds its own generator with
``evaluate.seed``, so sampled answers differ from a one-process run (still reproducible for a
fixed number of replicas). Ray actors rather than ``accelerate launch``: the stage stays one
command whatever the number of replicas, and the replicas run on any node of the cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def shards(n_items: int, batch_size: int, replicas: int) -> list[range]:
    """Contiguous item ranges, one per replica, each made of whole batches of the one-process run."""
    n_batches = math.ceil(n_items / batch_size)
    per = math.ceil(n_batches / replicas) if n_batches else 0
    out = []
    for r in range(replicas):
        start, stop = r * per * batch_size, min((r + 1) * per * batch_size, n_items)
        if start < stop:
            out.append(range(start, stop))
    return out


class _Replica:
    """One loaded policy (``training.inference.Answerer``) in its own process."""

    def __init__(self, policy_dir: str, device: str) -> None:
        from stvg.training.inference import Answerer

        self.answerer = Answerer(policy_dir, device)

    def answer(self, items: Sequence[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
        return self.answerer.answer(items, progress=False, **settings)


def replicated_answers(
    policy_dir: Path,
    items: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    replicas: int,
    ray_params: Any,
    device: str,
) -> list[str]:
    """``Answerer.answer(items, **settings)`` computed on ``replicas`` Ray actors, in item order.

    ``ray_params``: ``evaluate.ray`` (address, GPUs and CPUs per replica); ``device``: each replica's.
    """
    from stvg.cluster import ray_cluster

    parts = shards(len(items), int(settings["batch_size"]), replicas)
    if not parts:
        return []
    with ray_cluster(ray_params.address) as (ray, _):
        actor = ray.remote(num_gpus=ray_params.gpus_per_replica, num_cpus=ray_params.cpus_per_replica)(
            _Replica
        )
        workers = [actor.remote(str(policy_dir), device) for _ in parts]
        try:
            refs = [
                w.answer.remote([items[i] for i in part], settings)
                for w, part in zip(workers, parts, strict=True)
            ]
            answers = ray.get(refs)
        finally:
            for w in workers:
                ray.kill(w)
    return [text for part in answers for text in part]
