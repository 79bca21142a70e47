"""Instance identity, shared by every tracking backend and pure (numpy and records; no colour, no I/O).

- ``observation``: ``Observation`` (one instance on one tracked frame) and ``Tracks``;
- ``keyframes``: at a re-detection keyframe, which detections are instances already tracked;
- ``motion``: where a track's box is expected on another frame;
- ``merge``: linking the fragments of one instance (candidates, overlaps, links, strays);
- ``repair``: the whole-video repair (size filter, switch splits, merges, short tracks, IDs 1..K).

A backend's notion of appearance enters only as a ``merge.Similarity`` handed to ``repair_tracks``.
"""

from stvg.prompting.identity.keyframes import KeyframeDecision, match_keyframe
from stvg.prompting.identity.merge import Link, MergeRules, Similarity, merge_fragments
from stvg.prompting.identity.motion import center_distance, extrapolate_box, motion_box
from stvg.prompting.identity.observation import (
    Box,
    Observation,
    Tracks,
    box_mask,
    count_new_ids,
    track_label,
    with_payload,
)
from stvg.prompting.identity.repair import (
    RepairResult,
    RepairRules,
    fill_gaps,
    filter_small,
    renumber,
    repair_tracks,
    split_switches,
)

__all__ = [
    "Box",
    "KeyframeDecision",
    "Link",
    "MergeRules",
    "Observation",
    "RepairResult",
    "RepairRules",
    "Similarity",
    "Tracks",
    "box_mask",
    "center_distance",
    "count_new_ids",
    "extrapolate_box",
    "fill_gaps",
    "filter_small",
    "match_keyframe",
    "merge_fragments",
    "motion_box",
    "renumber",
    "repair_tracks",
    "split_switches",
    "track_label",
    "with_payload",
]
