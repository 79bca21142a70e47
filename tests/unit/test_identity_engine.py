"""The SAM2 backend's keyframe logic and the engine with scripted detectors and SAM2 sessions: new IDs,
back-fill, duplicates, carried instances, switches.

``ScriptedTracker`` follows ground-truth boxes of a scene: a mask prompt binds an object id to the
scene object it overlaps most, propagation returns that object's filled box wherever it exists.
It can inject one ID switch (two bindings swap when forward propagation reaches a frame). The
scripted segmenter turns a box into its filled box (the image predictor's part).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from stvg.config import DetectParams, PromptParams, RepairParams, Sam2Params
from stvg.geometry import box_iou, mask_to_box
from stvg.prompting.backends.sam2 import Sam2Backend
from stvg.prompting.engine import prompt_video
from stvg.prompting.identity import box_mask
from stvg.prompting.video import ArrayFrames
from stvg.records import Detection

H, W = 96, 128
Scene = dict[str, dict[int, tuple[float, float, float, float]]]  # object -> frame -> box


def linear(x0: float, y: float, frames: range, vx: float = 1.5, size: float = 16) -> dict[int, tuple]:
    return {f: (x0 + vx * f, y, x0 + vx * f + size, y + size) for f in frames}


class ScriptedDetector:
    def __init__(
        self,
        scene: Scene,
        blind: set[int] = frozenset(),
        duplicate: bool = False,
        masks: bool = False,
        group: bool = False,
    ):
        self.scene, self.blind, self.duplicate, self.masks = scene, blind, duplicate, masks
        self.group = group  # also return the box around all objects of the frame, scored highest
        self.calls: list[int] = []

    def detect_with_masks(self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None):
        out = []
        for f in frame_indices:
            self.calls.append(f)
            dets = []
            if f not in self.blind:
                for boxes in self.scene.values():
                    if f in boxes:
                        b = boxes[f]
                        dets.append((Detection(f, b, 0.9), box_mask(b, H, W) if self.masks else None))
                        if self.duplicate:
                            b2 = (b[0] + 1, b[1], b[2] + 1, b[3])
                            dets.append((Detection(f, b2, 0.8), box_mask(b2, H, W) if self.masks else None))
                if self.group and len(dets) > 1:
                    g = np.concatenate(
                        [np.min([d.box for d, _ in dets], 0)[:2], np.max([d.box for d, _ in dets], 0)[2:]]
                    )
                    dets.insert(0, (Detection(f, tuple(g.tolist()), 0.95), None))
            out.append(dets)
        return out


@dataclasses.dataclass
class SwitchPlan:
    frame: int
    a: str
    b: str
    done: bool = False


class ScriptedTracker:
    def __init__(self, scene: Scene, switch: SwitchPlan | None = None, log: list | None = None):
        self.scene, self.switch = scene, switch
        self.binding: dict[int, str] = {}
        self.first = self.n = 0
        self.log = log if log is not None else []

    def start(self, frames, first_frame=0):
        self.binding, self.first, self.n = {}, first_frame, len(frames)
        self.log.append(("start", first_frame, len(frames)))

    def _bind(self, frame, obj_id, box):
        scores = {name: float(box_iou(box, b[frame])) for name, b in self.scene.items() if frame in b}
        assert scores, f"prompt on frame {frame} where no object exists"
        self.binding[obj_id] = max(scores, key=scores.get)

    def add_mask(self, frame_idx, obj_id, mask):
        assert self.first <= frame_idx < self.first + self.n
        self._bind(frame_idx, obj_id, mask_to_box(mask))

    def propagate(self, start, n, reverse=False) -> Iterator:
        step = -1 if reverse else 1
        for k in range(n):
            f = start + step * k
            assert self.first <= f < self.first + self.n, (f, self.first, self.n)
            sw = self.switch
            if sw and not sw.done and not reverse and f == sw.frame:
                inv = {v: k for k, v in self.binding.items()}
                if sw.a in inv and sw.b in inv:
                    self.binding[inv[sw.a]], self.binding[inv[sw.b]] = sw.b, sw.a
                    sw.done = True
            out = {}
            for oid, name in self.binding.items():
                if f in self.scene[name]:
                    out[oid] = (box_mask(self.scene[name][f], H, W), 0.9)
            yield f, out

    def reset(self):
        self.binding = {}


class BoxSegmenter:
    """The image predictor's part, scripted: a box's mask is the filled box."""

    def masks(self, frame, boxes):
        return [box_mask(b, *frame.shape[:2]) for b in boxes]


def frames(n: int) -> ArrayFrames:
    return ArrayFrames([np.zeros((H, W, 3), np.uint8) for _ in range(n)], fps=10.0)


SAM2 = Sam2Params(redetect_every=5, window=8)
DETECT = DetectParams()
P = PromptParams(backend="sam2", sam2=SAM2, repair=RepairParams(merge_max_gap_s=0.5))


def backend(make, sam2: Sam2Params = SAM2, detect: DetectParams = DETECT) -> Sam2Backend:
    """The SAM2 backend over scripted sessions (``make()`` builds one)."""
    return Sam2Backend(sam2, detect, session=lambda offload: make(), segmenter=BoxSegmenter())


def track_keyframes(video, detector, make, sam2: Sam2Params = SAM2, detect: DetectParams = DETECT):
    return backend(make, sam2, detect).track(video, detector)


def owner(tracks, scene: Scene) -> dict[int, set[str]]:
    """raw/final id -> names of the scene objects its boxes sit on."""
    out: dict[int, set[str]] = {}
    for oid, fr in tracks.items():
        for f, o in fr.items():
            best = max(scene, key=lambda s: float(box_iou(o.box, scene[s][f])) if f in scene[s] else -1)
            out.setdefault(oid, set()).add(best)
    return out


def test_late_entering_object_gets_a_new_id_and_is_backfilled():
    scene = {"early": linear(5, 10, range(30)), "late": linear(5, 60, range(7, 30))}
    raw = track_keyframes(frames(30), ScriptedDetector(scene), lambda: ScriptedTracker(scene))
    assert set(raw.tracks) == {1, 2}
    assert owner(raw.tracks, scene) == {1: {"early"}, 2: {"late"}}
    assert sorted(raw.tracks[1]) == list(range(30))
    assert min(raw.tracks[2]) == 7, "the late object is propagated back to its first appearance"
    assert sorted(raw.tracks[2]) == list(range(7, 30))
    assert raw.counts["backward_frames"] == 3  # frames 9, 8, 7
    assert raw.counts["backward_stops"] == {
        "reached_start": 0,
        "vanished": 1,
        "ran_into_track": 0,
        "merged": 0,
    }


def test_windows_carry_ids_and_every_frame_is_tracked_once():
    scene = {"a": linear(0, 10, range(23)), "b": linear(60, 50, range(23), vx=-1)}
    log: list = []
    raw = track_keyframes(frames(23), ScriptedDetector(scene), lambda: ScriptedTracker(scene, log=log))
    assert set(raw.tracks) == {1, 2}
    assert all(sorted(f) == list(range(23)) for f in raw.tracks.values())
    starts = [e for e in log if e[0] == "start"]
    assert max(n for _, _, n in starts) <= SAM2.window + 1, "the boundary frame is kept, not re-read"
    assert len(starts) >= 3, "a 23-frame video with window 8 needs several windows"
    assert raw.counts["windows"] == 3 and raw.counts["carried"] == 4


def test_an_instance_hidden_on_a_window_boundary_keeps_its_id():
    seen = [*range(7), *range(10, 23)]  # hidden on frames 7..9, across the boundary at 8
    scene = {"a": {f: (5.0 + f, 10.0, 21.0 + f, 26.0) for f in seen}}
    raw = track_keyframes(frames(23), ScriptedDetector(scene), lambda: ScriptedTracker(scene))
    assert set(raw.tracks) == {1}, "carried with its last mask, not re-detected as a new instance"
    assert sorted(raw.tracks[1]) == seen
    assert raw.counts["new"] == 1 and raw.counts["matched"] >= 3


def test_duplicate_detection_creates_no_id():
    scene = {"a": linear(5, 10, range(20))}
    for masks in (False, True):
        raw = track_keyframes(
            frames(20),
            ScriptedDetector(scene, duplicate=True, masks=masks),
            lambda: ScriptedTracker(scene),
        )
        assert set(raw.tracks) == {1}
        assert raw.counts["duplicates"] >= 1


@pytest.mark.parametrize("drop", [True, False])
def test_a_group_box_around_touching_objects_is_dropped_at_keyframes(drop):
    scene = {"a": linear(5, 10, range(20), vx=1.0), "b": linear(21, 10, range(20), vx=1.0)}
    detect = DetectParams(drop_composites=drop)
    raw = track_keyframes(
        frames(20), ScriptedDetector(scene, group=True), lambda: ScriptedTracker(scene), detect=detect
    )
    assert raw.counts["composites"] == (4 if drop else 0)  # one group box per keyframe
    assert owner(raw.tracks, scene) == {1: {"a"}, 2: {"b"}}


def test_empty_keyframes_do_not_break_backward_propagation():
    scene = {"a": linear(5, 10, range(12, 30))}
    det = ScriptedDetector(scene, blind={0, 5, 10, 15})  # first seen at keyframe 20
    raw = track_keyframes(
        frames(30), det, lambda: ScriptedTracker(scene), dataclasses.replace(SAM2, window=4)
    )
    assert set(raw.tracks) == {1}
    assert sorted(raw.tracks[1]) == list(range(12, 30))


def test_backward_off_leaves_late_object_from_its_keyframe():
    scene = {"late": linear(5, 60, range(7, 30))}
    raw = track_keyframes(
        frames(30),
        ScriptedDetector(scene),
        lambda: ScriptedTracker(scene),
        dataclasses.replace(SAM2, backward=False),
    )
    assert min(raw.tracks[1]) == 10
    assert "backward_stops" not in raw.counts


def test_injected_id_switch_is_repaired_end_to_end():
    scene = {"top": linear(0, 10, range(40)), "bottom": linear(0, 60, range(40))}
    switch = SwitchPlan(frame=17, a="top", b="bottom")
    raw = track_keyframes(frames(40), ScriptedDetector(scene), lambda: ScriptedTracker(scene, switch))
    assert switch.done
    assert any(len(names) == 2 for names in owner(raw.tracks, scene).values()), "the fake did switch IDs"
    result = prompt_video(
        frames(40),
        P,
        ScriptedDetector(scene),
        backend=backend(lambda: ScriptedTracker(scene, SwitchPlan(17, "top", "bottom"))),
    )
    assert result.summary["instances"] == 2
    by_id = {int(i): g for i, g in result.table.groupby("instance_id")}
    for g in by_id.values():
        assert g.y1.nunique() == 1, "after repair each ID stays on one object"
        assert len(g) == 40
    kinds = [r["kind"] for r in result.summary["repairs"]]
    assert "split" in kinds and "merge" in kinds


@pytest.mark.parametrize("containment", [False, True])
def test_containment_option(containment):
    inner = {f: (40.0, 40.0, 56.0, 56.0) for f in range(20)}
    outer = {f: (30.0, 30.0, 66.0, 66.0) for f in range(5, 20)}  # contains `inner`, IoU ~0.2
    scene = {"inner": inner, "outer": outer}
    det = ScriptedDetector({"inner": {0: inner[0]}, "outer": outer})
    sam2 = dataclasses.replace(SAM2, containment=containment)
    raw = track_keyframes(frames(20), det, lambda: ScriptedTracker(scene), sam2)
    events = [e for e in raw.events if e["kind"] == "containment_replace"]
    if containment:
        assert len(events) == 1 and events[0]["removed"] == 1
        assert max(raw.tracks[1]) == 4, "the replaced instance ends before the replacing keyframe"
    else:
        assert events == []
        assert sorted(raw.tracks[1]) == list(range(20))
    assert 2 in raw.tracks


def test_prompt_video_outputs_consistent_table_and_sampling():
    scene = {"a": linear(5, 10, range(20)), "b": linear(5, 60, range(3, 20))}
    result = prompt_video(
        frames(20), P, ScriptedDetector(scene), backend=backend(lambda: ScriptedTracker(scene))
    )
    t = result.table
    assert sorted(t.instance_id.unique()) == [1, 2]
    assert (t.x2 <= W).all() and (t.y2 <= H).all() and (t.area > 0).all()
    assert t.groupby("instance_id").frame.min().to_dict() == {1: 0, 2: 3}
    s = result.sampling
    assert result.sampled_frames.shape == (len(s["frame_indices"]), s["out_height"], s["out_width"], 3)
    # red IDs are drawn on the sampled frames of a black video
    assert result.sampled_frames[..., 0].max() > 100
    assert result.summary["new_ids_after_start"] == 1
    assert result.rendered_frames == 20
