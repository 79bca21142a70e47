"""Where the prompt stage's videos are prompted: in the stage's own process or on a Ray cluster.

Both executors share one driver/worker split. The driver (``stvg.stages.prompt.run``) computes each
video's entry key, skips the complete ones and hands one ``Job`` per missing key to the executor. A
``PromptWorker`` (detector and tracking backend loaded once, reused for every video it gets) builds
the entry in a staging folder named by the key (``staging/<key>``, renamed into place when complete,
so it is complete or absent) and returns only a small ``Outcome``. The driver alone moves entries
into the database and writes its index: there is one writer whatever the number of workers.

- ``local``: one worker in the driver's process (``LocalExecutor``).
- ``ray``: one Ray actor per worker slot (``executors.ray_pool.RayExecutor``): a worker process that
  dies is replaced and its video re-submitted up to ``prompt.ray.max_retries`` times. With
  ``prompt.ray.transfer: object_store`` the worker shares no filesystem with the driver: the video
  goes to it and the finished entry comes back through Ray's object store (``PromptWorker.run_shipped``,
  ``unpack_entry``), and the driver stages it locally before the same commit.

The executor and ``prompt.ray`` are operational: they change no entry key, no entry byte and no DVC
parameter (``backends.OPERATIONAL_KEYS``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from stvg.config import Params

WORKER_SCRATCH = Path(tempfile.gettempdir()) / "stvg-prompt-worker"  # a node's shipped jobs (by entry key)


@dataclass(frozen=True)
class Job:
    """One video to prompt into the entry ``key``."""

    video_id: str
    path: str
    key: str


@dataclass
class Outcome:
    """What a worker returns for a job: where the complete entry is staged, or why there is none."""

    video_id: str
    key: str
    staged: str = ""  # staging/<key>, a complete entry; "" when it failed
    error: str = ""
    device_failure: bool = False  # the worker's device is unusable (sticky CUDA error)
    timings: dict[str, float] = field(default_factory=dict)
    tracked_frames: int = 0
    worker: str = ""  # host:pid of the process that built it (run report only)
    files: dict[str, bytes] = field(default_factory=dict)  # the entry itself (transfer: object_store)


class PromptWorker:
    """Builds entries in ``staging``; the detector is built once, the backend on the first video."""

    def __init__(
        self,
        params: Params,
        detector_weights: str,
        device: str,
        staging: str,
        detector: Any = None,
        threads: int = 0,
    ) -> None:
        """``threads``: a cap on OpenCV's and the detector's threads in this process (a worker's CPU
        share, so workers sharing a node do not oversubscribe it); 0 = their defaults."""
        from stvg.prompting.detector import YoloDetector
        from stvg.runtime import resolve_device

        if threads:
            import cv2

            cv2.setNumThreads(threads)
        det = params.detector
        self.params = params
        self.staging = Path(staging) if staging else WORKER_SCRATCH
        self.device = resolve_device(device, "prompt.device")
        self.detector = detector or YoloDetector(
            Path(detector_weights),
            conf=det.conf,
            classes=det.classes,
            imgsz=det.imgsz,
            device=self.device,
            threads=min(det.threads, threads) if threads else det.threads,
        )
        self.backend: Any = None  # built on the first video (models load there)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, job: Job, staging: Path | None = None) -> Outcome:
        """Prompt one video into ``staging/<key>`` (default: the worker's staging folder); any error is
        returned, never raised."""
        from stvg.prompting.backends import build_backend
        from stvg.prompting.backends.sam2.oom import DeviceFailure

        staging = staging or self.staging
        try:
            staging.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{job.key[:12]}-", dir=staging))
        except OSError as exc:
            error = f"cannot write to the staging folder {staging} ({exc}); check prompt.ray.staging"
            return Outcome(job.video_id, job.key, error=error, worker=self.name)
        try:
            self.backend = self.backend or build_backend(
                self.params.prompt, device=self.device, seed=self.params.seed
            )
            result = build_entry(tmp, Path(job.path), job.video_id, self.params, self.detector, self.backend)
            final = staging / job.key
            shutil.rmtree(final, ignore_errors=True)  # a copy a killed earlier attempt finished
            tmp.rename(final)
        except DeviceFailure as exc:
            error = f"DeviceFailure: {exc}"
            return Outcome(job.video_id, job.key, error=error, device_failure=True, worker=self.name)
        except Exception as exc:  # noqa: BLE001 - isolate the video; the summary names it and the reason
            return Outcome(job.video_id, job.key, error=f"{type(exc).__name__}: {exc}", worker=self.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        timings = {k: float(v) for k, v in result.timings.items()}
        frames = int(result.summary["tracked_frames"])
        return Outcome(
            job.video_id, job.key, str(final), timings=timings, tracked_frames=frames, worker=self.name
        )

    def run_shipped(self, job: Job, video: bytes) -> Outcome:
        """``run`` on a node that shares no filesystem with the driver: the video arrives as bytes, and
        the entry goes back in ``Outcome.files``. Each job works in a folder of its own under the
        node's scratch folder (drivers sharing a cluster may ship the same key) and removes it."""
        folder: Path | None = None
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f".job-{job.key[:12]}-", dir=self.staging))
            local = folder / f"video{PurePosixPath(job.path).suffix}"
            local.write_bytes(video)
            outcome = self.run(Job(job.video_id, str(local), job.key), staging=folder / "entry")
            if outcome.staged:
                outcome.files, outcome.staged = pack_entry(Path(outcome.staged)), ""
            return outcome
        except OSError as exc:
            error = f"cannot write to this worker's scratch folder {self.staging} ({exc})"
            return Outcome(job.video_id, job.key, error=error, worker=self.name)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def pack_entry(folder: Path) -> dict[str, bytes]:
    """Every file of a staged entry by its path relative to ``folder`` (POSIX separators)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def unpack_entry(files: Mapping[str, bytes], staging: Path, key: str) -> Path:
    """Write a shipped entry to ``staging/<key>`` (complete or absent); paths stay inside it."""
    staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=staging))
    try:
        for name, data in files.items():
            rel = PurePosixPath(name)
            if rel.is_absolute() or not rel.parts or ".." in rel.parts or "\\" in name:
                raise ValueError(
                    f"a worker returned the entry file {name!r}, which is not a relative path inside it"
                )
            target = tmp.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        final = staging / key
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_entry(folder: Path, video: Path, video_id: str, params: Params, detector: Any, backend: Any) -> Any:
    """Prompt ``video`` and write its whole entry into ``folder`` (a staging folder); returns the result.

    The stage's unit of work, the same for every executor: the folder is complete when this returns,
    and the driver's ``maskdb.MaskDB.commit`` moves it in.
    """
    from stvg.prompting.engine import prompt_video
    from stvg.prompting.maskdb import PROMPTED, write_entry

    result = prompt_video(
        video, params.prompt, detector, backend=backend, prompted_path=folder / PROMPTED, video_id=video_id
    )
    write_entry(folder, result.table, result.summary, result.sampling, result.sampled_frames)
    return result


class Executor(Protocol):
    """Runs jobs on workers and yields one outcome per job, in completion order."""

    in_flight: int

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]: ...

    def report(self) -> dict[str, Any]: ...


class LocalExecutor:
    """One worker in the driver's own process: jobs run one after the other."""

    def __init__(
        self, params: Params, detector_weights: Path, device: str, staging: Path, detector: Any = None
    ) -> None:
        self._args = (params, str(detector_weights), device, str(staging), detector)
        self.in_flight = 0

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        worker: PromptWorker | None = None
        for job in jobs:
            worker = worker or PromptWorker(*self._args)
            self.in_flight = 1
            outcome = worker.run(job)
            self.in_flight = 0
            yield outcome

    def report(self) -> dict[str, Any]:
        return {"executor": "local", "workers": 1}


def staging_dir(params: Params, out: Path) -> Path:
    """Where entries are staged: ``prompt.ray.staging`` (ray executor, transfer ``files``), else
    ``<out>/.staging``.

    A configured folder gets one subfolder per database (its name and a hash of its absolute path),
    so databases sharing it never meet. Only the driver clears it (at the start and the end of a
    run): what a killed run left is never read.
    """
    configured = params.prompt.ray.staging
    shipped = params.prompt.ray.transfer == "object_store"  # entries come back to the driver itself
    if params.prompt.executor != "ray" or shipped or not configured:
        return out / ".staging"
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return Path(configured) / f"{out.name}-{digest}"


def make_executor(
    params: Params, detector_weights: Path, device: str, staging: Path, detector: Any = None
) -> Executor:
    """The executor ``prompt.executor`` names."""
    if params.prompt.executor == "ray":
        from stvg.prompting.executors.ray_pool import RayExecutor

        return RayExecutor(params, detector_weights, device, staging, detector)
    return LocalExecutor(params, detector_weights, device, staging, detector)
