"""The mask database's files: the sampled frames are written the same on every Python."""


def test_sampled_frames_are_written_with_headers_that_depend_on_the_sizes_alone(tmp_path) -> None:
    """numpy's savez streams members with zip64 headers that differ between Python patch releases
    (3.11.2 and 3.11.7 gave different files for the same frames); write_npz must not."""
    import zipfile

    import numpy as np

    from stvg.prompting.maskdb import write_npz

    frames = np.random.default_rng(0).integers(0, 255, (4, 24, 32, 3), dtype=np.uint8)
    write_npz(tmp_path / "a.npz", frames=frames)
    write_npz(tmp_path / "b.npz", frames=frames.copy())
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(np.load(tmp_path / "a.npz")["frames"], frames)
    (member,) = zipfile.ZipFile(tmp_path / "a.npz").infolist()
    assert (member.filename, member.date_time, member.compress_type) == (
        "frames.npy",
        (1980, 1, 1, 0, 0, 0),
        zipfile.ZIP_DEFLATED,
    )
    assert member.extra == b""  # no zip64 record: what numpy's streamed write adds on some releases
    raw = (tmp_path / "a.npz").read_bytes()
    assert int.from_bytes(raw[4:6], "little") == 20  # "version needed": plain deflate, not zip64 (45)
