"""Request checks and the model folder's integrity: fast, no models loaded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from stvg.config import GroundParams, Params, params_from_dict, params_to_dict
from stvg.grounding.bundle import BundleError, load_bundle, write_bundle
from stvg.grounding.grounder import GroundOptions
from stvg.grounding.inputs import GroundingInputError, check_duration, check_query, describe, resolved_video


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "videos" / "clip.mp4"
    path.parent.mkdir()
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return path


def test_paths_uris_bytes_and_base64_resolve_to_a_file(video_file: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    for given in (str(video_file), video_file, video_file.as_uri()):
        with resolved_video(given, work) as path:
            assert path == video_file.resolve()
    data = video_file.read_bytes()
    encoded = base64.b64encode(data).decode()
    for given in (data, encoded, f"data:video/mp4;base64,{encoded}", encoded[:20] + "\n" + encoded[20:]):
        with resolved_video(given, work) as path:
            assert path.read_bytes() == data and path.parent == work
        assert not path.exists()  # the temporary copy is gone after the request


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("/no/such/clip.mp4", "is not an existing file or base64-encoded video bytes"),
        ("", "video is empty"),
        (None, "video is empty or of type NoneType"),
        (b"", "video holds 0 bytes"),
        ("file:///no/such/clip.mp4", "is not a readable file"),
    ],
)
def test_bad_videos_name_the_problem(tmp_path: Path, given: object, message: str) -> None:
    with pytest.raises(GroundingInputError, match=message), resolved_video(given, tmp_path):  # type: ignore[arg-type]
        pass


def test_a_server_reads_paths_only_inside_its_root(video_file: Path, tmp_path: Path) -> None:
    root = video_file.parent
    refused = pytest.raises(GroundingInputError, match="this server reads no paths; send the video's bytes")
    with refused, resolved_video(str(video_file), tmp_path, allow_paths=False):
        pass
    with resolved_video(str(root / ".." / "videos" / "clip.mp4"), tmp_path, root=root) as path:
        assert path == video_file.resolve()  # resolves inside the root: allowed
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"not yours")
    (root / "link.mp4").symlink_to(outside)
    for given in (outside, root / ".." / "secret.mp4", root / "link.mp4"):
        outside_root = pytest.raises(
            GroundingInputError, match="lies outside the folder this server may read"
        )
        with outside_root, resolved_video(str(given), tmp_path, root=root):
            pass


def test_query_duration_and_names() -> None:
    assert check_query("  the red square \n") == "the red square"
    for bad in ("", "   ", None, 3):
        with pytest.raises(GroundingInputError, match="query is empty"):
            check_query(bad)
    check_duration(8.0, 8.0, "clip.mp4")
    with pytest.raises(GroundingInputError, match=r"clip.mp4 lasts 8.1 s, over this model's limit of 8.0 s"):
        check_duration(8.1, 8.0, "clip.mp4")
    assert describe(b"abc") == "<uploaded video, 3 bytes>" and describe("clip.mp4") == "clip.mp4"
    assert describe("QUJD" * 100) == "<uploaded video, ~300 bytes as base64>"


def test_options_default_to_the_model_and_reject_bad_values() -> None:
    defaults = GroundParams(max_new_tokens=32, seed=5)
    options = GroundOptions.from_params(defaults, temperature=None)
    assert (options.max_new_tokens, options.seed, options.do_sample) == (32, 5, False)
    assert GroundOptions.from_params(defaults, max_new_tokens=1.0).max_new_tokens == 1
    for bad, message in (
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 2.5}, "max_new_tokens must be an integer"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"beams": 4}, r"unknown option\(s\) \['beams'\]"),
    ):
        with pytest.raises(GroundingInputError, match=message):
            GroundOptions.from_params(defaults, **bad)


# ----------------------------------------------------------------------------------------------- bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (policy / "model.safetensors").write_bytes(b"\x01" * 256)
    detector = tmp_path / "detector.pt"
    detector.write_bytes(b"\x02" * 128)
    params = params_from_dict(
        {"seed": 3, "prompt": {"repair": {"min_track_frames": 7}}, "ground": {"max_video_s": 30.0}}
    )
    write_bundle(tmp_path / "bundle", policy, params, detector)
    return tmp_path / "bundle"


def test_bundle_carries_the_prompting_configuration_and_reloads_it(bundle: Path) -> None:
    loaded = load_bundle(bundle)
    assert loaded.params.prompt.repair.min_track_frames == 7 and loaded.params.seed == 3
    assert loaded.ground.max_video_s == 30.0
    assert loaded.params.detector.weights == str(bundle.resolve() / "prompting" / "detector.pt")
    assert loaded.detector_path.read_bytes() == b"\x02" * 128
    assert (loaded.policy_dir / "model.safetensors").read_bytes() == b"\x01" * 256
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["prompting"]["prompt"] == params_to_dict(loaded.params.prompt)
    assert "mlflow" not in json.dumps(record) and str(bundle) not in json.dumps(record)  # no local paths


def test_equal_models_give_equal_bundles(bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    params = params_from_dict(
        {"seed": 3, "prompt": {"repair": {"min_track_frames": 7}}, "ground": {"max_video_s": 30.0}}
    )
    write_bundle(again, tmp_path / "policy", params, tmp_path / "detector.pt")
    assert (again / "bundle.json").read_bytes() == (bundle / "bundle.json").read_bytes()
    assert load_bundle(again).identity == load_bundle(bundle).identity
    other = tmp_path / "other"
    write_bundle(other, tmp_path / "policy", Params(), tmp_path / "detector.pt")
    assert load_bundle(other).identity != load_bundle(bundle).identity


def test_a_replaced_or_truncated_file_is_refused_by_name(bundle: Path) -> None:
    detector = bundle / "prompting" / "detector.pt"
    detector.write_bytes(b"\x03" * 128)  # same size, other weights
    with pytest.raises(BundleError, match=r"detector.pt does not match the SHA-256"):
        load_bundle(bundle)
    detector.write_bytes(b"\x02" * 128)
    (bundle / "policy" / "model.safetensors").write_bytes(b"\x01" * 100)
    with pytest.raises(BundleError, match=r"model.safetensors has 100 bytes, the model version recorded 256"):
        load_bundle(bundle)
    (bundle / "policy" / "model.safetensors").unlink()
    with pytest.raises(BundleError, match="is missing from the model folder"):
        load_bundle(bundle)


def test_a_bundle_needs_a_policy_and_detector_and_a_fresh_folder(tmp_path: Path, bundle: Path) -> None:
    with pytest.raises(BundleError, match="holds no policy"):
        write_bundle(tmp_path / "x", tmp_path, Params(), tmp_path / "detector.pt")
    with pytest.raises(BundleError, match="run `dvc repro detector`"):
        write_bundle(tmp_path / "x", tmp_path / "policy", Params(), tmp_path / "nope.pt")
    with pytest.raises(BundleError, match="is not empty"):
        write_bundle(bundle, tmp_path / "policy", Params(), tmp_path / "detector.pt")
    with pytest.raises(BundleError, match="has no bundle.json"):
        load_bundle(tmp_path / "policy")
