"""The paper's backend: YOLO keyframes, SAM2 image predictor box -> mask, SAM2 video propagation.

Per video (``Sam2Backend.track``): the forward pass (``forward``) propagates every instance through
windowed SAM2 sessions and re-detects every ``redetect_every`` frames, turning each box into a mask
with the SAM2 image predictor and applying the duplicate rule to masks; the backward pass
(``backward``) traces each new instance back from its keyframe. An out-of-memory error is retried
with a halved window and offload (``oom``); the window actually used is in the entry's summary.

Departures from the official code (``dettrack.py``): new instances are also propagated backward (the
paper describes it; the code has none); IDs are repaired afterwards (``identity``); the model is
built once per process; windows carry every live instance instead of rebuilding the predictor;
the containment rule is off by default (``prompt.sam2.containment``).
"""

from __future__ import annotations

from typing import Any

from stvg.config import DetectParams, Sam2Params
from stvg.prompting.backends.base import Detector, RawTracking
from stvg.prompting.backends.sam2.backward import track_backward
from stvg.prompting.backends.sam2.forward import Plan, Tools, track_forward
from stvg.prompting.backends.sam2.oom import DeviceFailure, with_retries
from stvg.prompting.backends.sam2.session import (
    Sam2Segmenter,
    Sam2Session,
    Segmenter,
    Session,
    build_predictor,
)
from stvg.prompting.identity import Tracks
from stvg.prompting.video import FrameSource
from stvg.runtime import sam2_hole_filling

__all__ = ["DeviceFailure", "Sam2Backend"]


class Sam2Backend:
    """``TrackingBackend`` of the paper's path (see the module docstring).

    ``session`` / ``segmenter`` replace SAM2 (scripted fakes in tests): ``session(offload)`` returns
    a fresh ``Session``.
    """

    name = "sam2"
    similarity = None  # SAM2 follows each instance's own mask: repair merges by motion alone

    def __init__(
        self,
        p: Sam2Params,
        detect: DetectParams,
        *,
        device: str = "cpu",
        seed: int = 0,
        session: Any = None,
        segmenter: Segmenter | None = None,
    ) -> None:
        self.p, self.detect = p, detect
        if session is None:
            model = build_predictor(p.cfg, p.checkpoint, device, p.image_size, seed)
            session = lambda offload: Sam2Session(model, offload)  # noqa: E731
            segmenter = segmenter or Sam2Segmenter(model)
        self._session, self._segmenter = session, segmenter
        self.hole_filling = sam2_hole_filling(device)  # "on", or "off: <why>"

    def track(self, source: FrameSource, detector: Detector) -> RawTracking:
        """Forward + backward passes, retried with a halved window on GPU out-of-memory."""
        (state, init_s), window, retries = with_retries(
            lambda window, offload: self._passes(source, detector, window, offload),
            self.p.window,
            self.p.offload_to_cpu,
        )
        facts = {"window": window, "oom_retries": retries, "hole_filling": self.hole_filling}
        timings = {**state.clock.seconds, "init_state_s": init_s}
        return RawTracking(
            tracks=state.tracks, events=state.events, counts=state.counts, timings=timings, facts=facts
        )

    def _passes(
        self, source: FrameSource, detector: Detector, window: int, offload: bool
    ) -> tuple[Any, float]:
        session: Session = self._session(offload)
        plan = Plan(
            every=self.p.redetect_every,
            window=window,
            id_iou=self.p.id_iou,
            containment=self.p.containment,
            containment_ratio=self.p.containment_ratio,
            backward=self.p.backward,
        )
        assert self._segmenter is not None
        tools = Tools(source, detector, session, self._segmenter, self.detect, plan)
        state = track_forward(tools)
        if plan.backward:
            track_backward(tools, state)
        return state, float(getattr(session, "init_seconds", 0.0))

    def complete(
        self, tracks: Tracks, source: FrameSource, max_gap: int
    ) -> tuple[Tracks, list[dict[str, Any]]]:
        """Nothing: SAM2 propagated every instance already."""
        return tracks, []

    def close(self) -> None:
        """The model stays cached (``build_predictor``) for the process's next backend."""
