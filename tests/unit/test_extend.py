"""Track-end extension (the CPU backend's forward/backward propagation) on drawn frames: a shape
entering at the frame edge is followed back to its first visible pixels, a leaving one forward, and
an extension never takes another colour or another track's object."""

from __future__ import annotations

import numpy as np

from stvg.geometry import box_iou, mask_to_box
from stvg.prompting.backends.synthetic_cpu.colour import colour_feature
from stvg.prompting.backends.synthetic_cpu.extend import ExtendParams, extend_track_ends
from stvg.prompting.identity import Observation

H, W, SIZE, SPEED = 60, 120, 20, 4
BLUE, RED = (40, 75, 205), (205, 35, 35)


def frames_with(colour_at: dict[int, tuple[int, int, int]], n: int = 20) -> list[np.ndarray]:
    """A square of SIZE px moving right at SPEED px/frame, entering from the left edge at frame 0."""
    out = []
    for t in range(n):
        img = np.full((H, W, 3), 200, dtype=np.uint8)
        x = -SIZE + 2 + SPEED * t
        img[20 : 20 + SIZE, max(0, x) : max(0, x + SIZE)] = colour_at.get(t, BLUE)
        out.append(img)
    return out


def observed(frames: list[np.ndarray], positions: range) -> dict[int, Observation]:
    track = {}
    for t in positions:
        mask = (frames[t] != 200).any(axis=2)
        track[t] = Observation(
            box=mask_to_box(mask), area=int(mask.sum()), score=0.9, feature=colour_feature(frames[t], mask)
        )
    return track


def test_an_entering_shape_is_followed_back_to_its_first_visible_pixels():
    frames = frames_with({})
    tracks = {1: observed(frames, range(6, 20))}  # the detector found it from frame 6 on
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None, ExtendParams())
    visible = [t for t in range(20) if (frames[t] != 200).any(axis=2).sum() >= 16]
    assert sorted(out[1]) == visible
    assert all(out[1][t].filled and out[1][t].score == 0.0 for t in range(visible[0], 6))
    assert out[1][visible[0]].box == mask_to_box((frames[visible[0]] != 200).any(axis=2))
    assert log == [
        {**log[0], "kind": "extend", "track": 1, "direction": "backward", "frames": 6 - visible[0]}
    ]


def test_a_different_colour_at_the_expected_place_is_not_taken():
    frames = frames_with({t: RED for t in range(6)})  # another (red) object where blue was heading from
    tracks = {1: observed(frames, range(6, 20))}
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    assert sorted(out[1]) == list(range(6, 20)) and log == []


def test_another_tracks_object_is_not_taken_and_the_search_stops_at_frames_it_has():
    frames = frames_with({})
    other = observed(frames, range(3))  # frames 0..2 belong to track 2 (same object, same colours)
    tracks = {1: observed(frames, range(6, 20)), 2: other}
    out, _ = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    assert min(out[1]) == 3  # 5, 4, 3 found; 2 is track 2's
    assert sorted(out[2]) == [0, 1, 2]


def test_a_box_around_two_shapes_held_by_a_track_of_other_colours_does_not_stop_the_walk():
    frames = frames_with({})
    for img in frames:
        img[40:45, 0:20] = RED  # a red strip just below the blue square's path, tracked as track 2
    red = np.zeros((H, W), dtype=bool)
    red[40:45, 0:20] = True
    strip = {
        t: Observation(box=mask_to_box(red), area=100, score=0.9, feature=colour_feature(frames[t], red))
        for t in range(6, 20)
    }
    for t in range(3, 6):  # the detector returned one box (and mask) around both shapes: track 2's
        both = (frames[t] != 200).any(axis=2)
        strip[t] = Observation(
            box=mask_to_box(both), area=int(both.sum()), score=0.9, feature=colour_feature(frames[t], both)
        )
    tracks = {1: observed(frames, range(6, 20)), 2: strip}
    for t in (4, 5):
        blue = (frames[t] == BLUE).all(axis=2)
        assert box_iou(mask_to_box(blue), strip[t].box) >= 0.7  # the group box covers the blue part
    out, _ = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    # track 2's usual colours are red: its group box is not the blue square's object
    assert min(out[1]) <= 3
    assert out[1][4].box == mask_to_box((frames[4] == BLUE).all(axis=2))


def test_max_frames_bounds_an_extension():
    frames = frames_with({})
    tracks = {1: observed(frames, range(6, 20))}
    out, log = extend_track_ends(
        tracks, frames.__getitem__, len(frames), lambda m: None, ExtendParams(max_frames=2)
    )
    assert min(out[1]) == 4 and log[0]["frames"] == 2


def test_a_leaving_shape_is_followed_forward_to_its_last_visible_pixels():
    frames = frames_with({})[::-1]  # time-reversed: the square moves left and leaves at the left edge
    tracks = {1: observed(frames, range(14))}
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    visible = [t for t in range(20) if (frames[t] != 200).any(axis=2).sum() >= 16]
    assert sorted(out[1]) == visible and log[0]["direction"] == "forward"


GREY = (120, 120, 120)


def turning_square(n: int = 21, turn: int = 10, cover: range = range(6, 15)) -> tuple[list, list]:
    """A blue square moving right until ``turn``, then left; a grey bar hides its left part on ``cover``.

    Returns the frames and each frame's visible blue mask.
    """
    frames, visible = [], []
    for t in range(n):
        img = np.full((H, W, 3), 200, dtype=np.uint8)
        x = 20 + SPEED * (t if t <= turn else 2 * turn - t)
        img[20 : 20 + SIZE, x : x + SIZE] = BLUE
        if t in cover:
            img[10:50, x - 4 : x + 8] = GREY  # covers the left 8 px of the square
        frames.append(img)
        visible.append((img == BLUE).all(axis=2))
    return frames, visible


def test_a_gap_is_walked_by_colour_along_the_motion_and_follows_a_turn():
    frames, visible = turning_square()
    tracks = {1: observed(frames, [*range(6), *range(15, 21)])}  # missed while covered (6..14)
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    assert sorted(out[1]) == list(range(21))
    for t in range(6, 15):  # the visible part, where interpolating 5 -> 15 would cut the turn
        assert out[1][t].box == mask_to_box(visible[t]) and out[1][t].filled
    assert [e["kind"] for e in log] == ["fill_colour"] and log[0]["gap"] == [6, 14]
    interpolated_x1 = (out[1][5].box[0] + out[1][15].box[0]) / 2  # both ends are at x = 40
    assert abs(out[1][10].box[0] - interpolated_x1) > SIZE / 2


def test_a_visible_part_cut_in_two_by_an_occluder_is_taken_whole():
    frames = frames_with({})
    for t in range(8, 11):  # a thin grey bar across the middle of the square
        x = -SIZE + 2 + SPEED * t
        frames[t][20 : 20 + SIZE, x + 8 : x + 12] = GREY
    tracks = {1: observed(frames, [*range(4, 8), *range(11, 20)])}
    out, _ = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    for t in range(8, 11):
        blue = (frames[t] == BLUE).all(axis=2)
        assert out[1][t].box == mask_to_box(blue) and out[1][t].area == int(blue.sum())


def test_a_sliver_inside_a_gap_is_left_to_interpolation():
    frames = frames_with({})
    for t in range(8, 11):  # all but a 2-px column hidden
        x = -SIZE + 2 + SPEED * t
        frames[t][15 : 25 + SIZE, x : x + SIZE - 2] = GREY
    tracks = {1: observed(frames, [*range(4, 8), *range(11, 20)])}
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), lambda m: None)
    assert not any(t in out[1] for t in range(8, 11))
    assert [e["kind"] for e in log] == ["extend"]  # only its entry at the left edge, before frame 4


def riding_square(n: int = 30) -> list[np.ndarray]:
    """A 10-px blue square that appears at frame 5 on a larger blue rectangle (columns 20..49) and
    moves right at 3 px/frame: no outline shows until it comes off the rectangle at frame 16."""
    frames = []
    for t in range(n):
        img = np.full((H, W, 3), 200, dtype=np.uint8)
        img[15:45, 20:50] = BLUE
        if t >= 5:
            img[25:35, 5 + 3 * t : 15 + 3 * t] = BLUE
        frames.append(img)
    return frames


def square_track(frames: list[np.ndarray], positions: range) -> dict[int, Observation]:
    track = {}
    for t in positions:
        mask = np.zeros((H, W), dtype=bool)
        mask[25:35, 5 + 3 * t : 15 + 3 * t] = True
        track[t] = Observation(
            box=mask_to_box(mask), area=100, score=0.9, payload=mask, feature=colour_feature(frames[t], mask)
        )
    return track


def test_a_shape_on_one_of_its_own_colour_is_followed_by_its_shape_until_it_would_leave_it():
    frames = riding_square()
    tracks = {1: square_track(frames, range(16, 30))}  # detected once off the rectangle
    same = lambda m: m  # noqa: E731 - payloads here are the masks themselves
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), same, decode=same)
    # back over the rectangle, where no outline shows, while all of its shape lies on blue; at
    # frame 4 its motion puts it at x = 17, three of its columns on the background: the walk stops
    assert sorted(out[1]) == list(range(5, 30))
    assert out[1][8].box == (29.0, 25.0, 39.0, 35.0) and out[1][8].filled
    assert log[0]["direction"] == "backward" and log[0]["hidden_frames"] == 11
    # off, or without masks to move: it stops where the square meets the rectangle
    off, _ = extend_track_ends(
        tracks, frames.__getitem__, len(frames), same, ExtendParams(hidden_fraction=0.0), decode=same
    )
    assert min(off[1]) == 16
    assert min(extend_track_ends(tracks, frames.__getitem__, len(frames), same)[0][1]) == 16


def test_a_hidden_shape_is_not_placed_on_another_tracks_object_of_its_colour():
    frames = riding_square()
    tracks = {1: square_track(frames, range(16, 30))}
    # a second blue object tracked where the square's motion puts it on frames 10..15
    tracks[2] = {t: square_track(frames, range(t, t + 1))[t] for t in range(10, 16)}
    same = lambda m: m  # noqa: E731
    out, log = extend_track_ends(tracks, frames.__getitem__, len(frames), same, decode=same)
    assert min(out[1]) == 16 and not any(r["track"] == 1 and r["direction"] == "backward" for r in log)
