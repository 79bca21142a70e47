"""The ``ray`` executor: one Ray actor per worker slot, each holding a ``PromptWorker``.

An actor loads the detector and the tracking backend once and prompts one video at a time, so a
worker slot never queues more than the video it is on: when its process dies (``os._exit``, an OOM
kill, a lost node) exactly that video is re-submitted, to a fresh actor, up to
``prompt.ray.max_retries`` times, then listed as failed. A sticky CUDA error on a worker is treated
the same way (the actor is replaced). A worker whose constructor raises (CUDA asked for on a node
without a GPU, weights it cannot read) stops the run with that error (``WorkerStartError``, a
``ValueError``: the stage prints it and exits 2), as every worker would fail alike. Actors are recycled every ``prompt.ray.recycle_every`` videos
to shed memory a long-lived process leaks. With ``prompt.ray.transfer: files`` workers read each video
by its path and write its entry to the staging folder (paths every node sees: a shared filesystem on
several nodes) and return only an ``Outcome``; with ``object_store`` the video goes to the worker as
an object and the entry comes back inside the ``Outcome``, which the driver unpacks into its own
staging folder (``executors.unpack_entry``), so the nodes need no shared filesystem.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.config import Params
from stvg.prompting.executors import Job, Outcome, PromptWorker, unpack_entry

log = logging.getLogger("stvg.prompt")


class WorkerStartError(ValueError):
    """A worker actor's constructor raised (a device or weights it cannot load): the run stops."""


def _last_line(exc: BaseException) -> str:
    """The exception line of a remote traceback (``ValueError: ...``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass
class _Slot:
    actor: Any = None
    videos: int = 0  # videos the current actor has taken


class RayExecutor:
    """Spreads jobs over Ray actors; connects to ``prompt.ray.address`` (or starts a local cluster)."""

    def __init__(
        self, params: Params, detector_weights: Path, device: str, staging: Path, detector: Any = None
    ) -> None:
        self.cfg = params.prompt.ray
        threads = max(1, round(self.cfg.cpus_per_task))  # workers sharing a node do not oversubscribe it
        self.shipped = self.cfg.transfer == "object_store"
        worker_staging = "" if self.shipped else str(staging)  # "": a scratch folder on the worker's node
        self._args = (params, str(detector_weights), device, worker_staging, detector, threads)
        self.staging = staging
        self.in_flight = 0
        self.retries: Counter[str] = Counter()
        self.dashboard = ""
        self.workers = 0
        self.actors_started = 0  # first starts, replacements of dead workers and recycling

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        from stvg.cluster import ray_cluster

        pending = deque(jobs)
        if not pending:
            return
        with ray_cluster(self.cfg.address) as (ray, self.dashboard):
            actor_class = ray.remote(
                num_cpus=self.cfg.cpus_per_task, num_gpus=self.cfg.gpus_per_task, max_restarts=0
            )(PromptWorker)
            self.workers = min(len(pending), self._slots(ray))
            slots = [_Slot() for _ in range(self.workers)]
            try:
                yield from self._loop(ray, actor_class, slots, pending)
            finally:
                for slot in slots:
                    if slot.actor is not None:
                        ray.kill(slot.actor)

    def _loop(self, ray: Any, actor_class: Any, slots: list[_Slot], pending: deque[Job]) -> Iterator[Outcome]:
        """Keep every slot busy; yield outcomes as they finish."""
        running: dict[Any, tuple[int, Job]] = {}
        while pending or running:
            self._submit(ray, actor_class, slots, pending, running)
            self.in_flight = len(running)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index, job = running.pop(ref)
            outcome = self._collect(ray, ref, slots[index], job, pending)
            self.in_flight = len(running)
            if outcome is not None:
                yield outcome

    def _slots(self, ray: Any) -> int:
        """``max_in_flight``, or as many actors as the cluster's CPUs (and GPUs) fit."""
        if self.cfg.max_in_flight:
            return self.cfg.max_in_flight
        resources = ray.cluster_resources()
        fit = math.floor(resources.get("CPU", 1) / self.cfg.cpus_per_task)
        if self.cfg.gpus_per_task:
            fit = min(fit, math.floor(resources.get("GPU", 0) / self.cfg.gpus_per_task))
        if fit < 1:
            raise ValueError(
                f"the Ray cluster has {resources.get('CPU', 0)} CPUs and {resources.get('GPU', 0)} GPUs: "
                f"not enough for one worker (prompt.ray.cpus_per_task={self.cfg.cpus_per_task}, "
                f"gpus_per_task={self.cfg.gpus_per_task}); add nodes or lower them"
            )
        return fit

    def _submit(
        self,
        ray: Any,
        actor_class: Any,
        slots: list[_Slot],
        pending: deque[Job],
        running: dict[Any, tuple[int, Job]],
    ) -> None:
        """Give every idle slot its next job, replacing actors that died or are due for recycling."""
        busy = {index for index, _ in running.values()}
        for index, slot in enumerate(slots):
            if not pending:
                return
            if index in busy:
                continue
            recycle = self.cfg.recycle_every and slot.videos >= self.cfg.recycle_every
            if slot.actor is not None and recycle:
                ray.kill(slot.actor)
                slot.actor = None
            if slot.actor is None:
                slot.actor, slot.videos = actor_class.remote(*self._args), 0
                self.actors_started += 1
            job = pending.popleft()
            running[self._start(ray, slot.actor, job)] = (index, job)
            slot.videos += 1

    def _start(self, ray: Any, actor: Any, job: Job) -> Any:
        """The actor's call for ``job``: by path, or with the video's bytes as an object."""
        if self.shipped:
            return actor.run_shipped.remote(job, ray.put(Path(job.path).read_bytes()))
        return actor.run.remote(job)

    def _collect(self, ray: Any, ref: Any, slot: _Slot, job: Job, pending: deque[Job]) -> Outcome | None:
        """The job's outcome; None when it was re-submitted after its worker died."""
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        try:
            outcome: Outcome = ray.get(ref)
        except RayActorError as exc:
            if exc.actor_init_failed:  # every worker would fail the same way: stop, naming the cause
                raise WorkerStartError(f"a prompt worker could not start: {_last_line(exc)}") from exc
            reason = f"the worker process died ({type(exc).__name__})"
            ray.kill(slot.actor)
        except WorkerCrashedError as exc:
            reason = f"the worker process died ({type(exc).__name__})"
            ray.kill(slot.actor)
        except RayTaskError as exc:  # raised outside the worker's own isolation: this video only
            return Outcome(job.video_id, job.key, error=_last_line(exc))
        else:
            if not outcome.device_failure:
                return self._received(outcome)
            reason = outcome.error
            ray.kill(slot.actor)  # the device is unusable in that process: a fresh one gets the video
        slot.actor = None
        self.retries[job.video_id] += 1
        if self.retries[job.video_id] <= self.cfg.max_retries:
            log.warning("video %s: %s; retrying (%d)", job.video_id, reason, self.retries[job.video_id])
            pending.appendleft(job)
            return None
        tries = self.cfg.max_retries + 1
        return Outcome(job.video_id, job.key, error=f"{reason} on each of {tries} attempts")

    def _received(self, outcome: Outcome) -> Outcome:
        """A shipped entry unpacked into the driver's staging folder, where the commit expects it."""
        if not outcome.files:
            return outcome
        try:
            outcome.staged = str(unpack_entry(outcome.files, self.staging, outcome.key))
        except (OSError, ValueError) as exc:
            outcome.error = f"the entry from worker {outcome.worker} could not be staged: {exc}"
        outcome.files = {}
        return outcome

    def report(self) -> dict[str, Any]:
        return {
            "executor": "ray",
            "transfer": self.cfg.transfer,
            "workers": self.workers,
            "actors_started": self.actors_started,
            "retries": dict(self.retries),
            "dashboard": self.dashboard,
        }
