"""`stvg download` on tmp folders: http (archive) and local sources, synthetic generation, reruns."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
import yaml

from stvg.stages import download as stage
from tests.unit.test_fetch import server  # noqa: F401 - the 127.0.0.1 Range server fixture

TINY_SYNTHETIC = {
    "n_train": 2,
    "n_val": 1,
    "width": 64,
    "height": 64,
    "fps": 5.0,
    "duration_s": 2.0,
    "min_instances": 2,
    "max_instances": 2,
    "shape_size": [10, 14],
}


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _write_params(path, sources, **sections):
    path.write_text(yaml.safe_dump({"download": {"sources": sources, "retries": 0}, **sections}))
    return path


def test_http_archive_and_local_sources_land_under_data(server, tmp_path, capsys):  # noqa: F811
    base, state = server
    archive = _tar_gz({"anno_v2/val_v2.json": b"{}", "video_parts/0/a.mp4": b"v"})
    state.files["/hc.tar.gz"] = archive
    local = tmp_path / "mine"
    local.mkdir()
    (local / "query_v2.json").write_text("{}")
    params = _write_params(
        tmp_path / "params.yaml",
        [
            {
                "name": "hc",
                "kind": "http",
                "url": f"{base}/hc.tar.gz",
                "sha256": hashlib.sha256(archive).hexdigest(),
                "extract": True,
            },
            {"name": "queries", "kind": "local", "path": str(local), "dest": "hc_queries"},
        ],
    )
    argv = [
        "--params",
        str(params),
        "--data-dir",
        str(tmp_path / "data"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    assert stage.main(argv) == 0
    assert (tmp_path / "data" / "hc" / "video_parts" / "0" / "a.mp4").read_bytes() == b"v"
    assert (tmp_path / "data" / "hc_queries" / "query_v2.json").read_text() == "{}"
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["status"] for s in first] == ["fetched", "fetched"]

    assert stage.main(argv) == 0  # nothing changed: nothing fetched
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["status"] for s in again] == ["up-to-date", "up-to-date"]
    assert len(state.ranges) == 1

    (local / "query_v2.json").write_text('{"v.mp4": "a man"}')  # the user's copy changed
    assert stage.main([*argv, "--only", "queries"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "fetched"
    assert "a man" in (tmp_path / "data" / "hc_queries" / "query_v2.json").read_text()


def test_failing_source_is_reported_and_others_still_run(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text("{}")
    params = _write_params(
        tmp_path / "params.yaml",
        [
            {"name": "missing", "kind": "local", "path": str(tmp_path / "nope")},
            {"name": "good", "kind": "local", "path": str(good)},
        ],
    )
    code = stage.main(["--params", str(params), "--data-dir", str(tmp_path / "data"), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "source 'missing' failed" in err and "download.sources" in err
    assert (tmp_path / "data" / "good" / "good.json").is_file()
    assert not (tmp_path / "data" / "missing").exists()


def test_unknown_only_name_is_an_error(tmp_path, capsys):
    params = _write_params(tmp_path / "params.yaml", [{"name": "a", "kind": "local", "path": str(tmp_path)}])
    assert stage.main(["--params", str(params), "--only", "b"]) == 2
    assert "no source named b" in capsys.readouterr().err


def test_synthetic_source_generates_once_per_params(tmp_path, capsys):
    params = _write_params(
        tmp_path / "params.yaml", [{"name": "synthetic", "kind": "synthetic"}], synthetic=TINY_SYNTHETIC
    )
    argv = ["--params", str(params), "--data-dir", str(tmp_path / "data"), "--no-progress"]
    assert stage.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "generated"
    assert (tmp_path / "data" / "synthetic" / "anno_v2" / "train_v2.json").is_file()
    assert stage.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "up-to-date"

    _write_params(
        params, [{"name": "synthetic", "kind": "synthetic"}], synthetic={**TINY_SYNTHETIC, "seed": 1}
    )
    assert stage.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "generated"


@pytest.mark.parametrize("extract", [True, False])
def test_http_extract_flag(server, tmp_path, extract):  # noqa: F811
    base, state = server
    state.files["/notes.txt"] = b"hello"
    params = _write_params(
        tmp_path / "params.yaml",
        [{"name": "notes", "kind": "http", "url": f"{base}/notes.txt", "extract": extract}],
    )
    code = stage.main(
        [
            "--params",
            str(params),
            "--data-dir",
            str(tmp_path / "data"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--no-progress",
        ]
    )
    if extract:  # a plain file cannot be extracted: a clear error, nothing in data/
        assert code == 1
        assert not (tmp_path / "data" / "notes").exists()
    else:
        assert code == 0
        assert (tmp_path / "data" / "notes" / "notes.txt").read_bytes() == b"hello"


def test_the_raw_data_version_does_not_depend_on_where_a_local_release_was_copied_from(tmp_path):
    """The provenance marker (absolute source path, file times) is left out of data.dvc's hash."""
    import shutil
    import subprocess
    import sys

    from flows import dvc
    from tests.conftest import REPO_ROOT

    versions = []
    for where in ("first", "second"):
        release = tmp_path / where / "release"
        release.mkdir(parents=True)
        (release / "anno.json").write_text("{}")
        repo = tmp_path / f"repo-{where}"
        repo.mkdir()
        shutil.copy(REPO_ROOT / ".dvcignore", repo / ".dvcignore")
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
        params = _write_params(repo / "params.yaml", [{"name": "rel", "kind": "local", "path": str(release)}])
        assert stage.main(["--params", str(params), "--data-dir", str(repo / "data"), "--no-progress"]) == 0
        marker = json.loads((repo / "data" / "rel" / stage.SOURCE_MARKER).read_text())
        assert marker["path"] == str(release.resolve())  # the marker differs between the two copies ...
        versions.append(dvc.dvc_file_hash(dvc.add("data", cwd=repo)))
    assert versions[0] == versions[1]  # ... the raw-data version does not
