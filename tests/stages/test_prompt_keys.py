"""Cache keys and DVC dependencies per backend: editing one backend never re-prompts the other's videos."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stvg.config import PromptParams, params_from_dict
from stvg.prompting import backends
from stvg.stages import prompt as stage


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    """A copy of ``stvg/prompting`` to edit (``code_hash`` also reads ``stvg/geometry.py``)."""
    copy = tmp_path / "prompting"
    shutil.copytree(backends.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("edited", "changes"),
    [
        ("backends/synthetic_cpu/extend.py", {"synthetic_cpu"}),
        ("backends/sam2/forward.py", {"sam2"}),
        ("identity/merge.py", {"synthetic_cpu", "sam2"}),  # shared code keys both
        ("backends/__init__.py", set()),  # only names the backends
        ("weights.py", set()),  # fetching checkpoints decides nothing an entry holds
    ],
)
def test_an_edit_changes_the_keys_of_the_backends_whose_code_it_is(
    package: Path, edited: str, changes: set
) -> None:
    before = {b: backends.code_hash(b, package) for b in backends.BACKENDS}
    edit(package / edited)
    after = {b: backends.code_hash(b, package) for b in backends.BACKENDS}
    assert {b for b in before if before[b] != after[b]} == changes


def test_keys_hold_only_the_chosen_backends_params(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    cpu = stage.key_parts(params_from_dict({}), weights)
    sam2 = stage.key_parts(params_from_dict({"prompt": {"backend": "sam2", "synthetic_cpu": None}}), weights)
    assert "synthetic_cpu" in cpu["params"]["prompt"] and "sam2" not in cpu["params"]["prompt"]
    assert "sam2" in sam2["params"]["prompt"] and "synthetic_cpu" not in sam2["params"]["prompt"]
    assert "offload_to_cpu" not in sam2["params"]["prompt"]["sam2"], "a memory knob changes no entry"
    assert sam2["weights"]["sam2"].startswith("random:") and "sam2" not in cpu["weights"]
    assert "max_churn" not in cpu["params"]["prompt"], "a gate bound changes no entry"
    cheap = params_from_dict({"prompt": {"max_churn": 9.0, "max_repairs_per_video": 1}})
    assert stage.key_parts(cheap, weights) == cpu


@pytest.mark.slow
def test_dvc_depends_on_the_chosen_backends_folder_only(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `dvc repro prompt` re-runs for: dvc.yaml resolved by DVC itself, for each backend."""
    deps = {}
    for backend in backends.BACKENDS:
        root = tmp_path / backend
        root.mkdir()
        shutil.copy(repo_root / "dvc.yaml", root)
        params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
        params["prompt"] = {"backend": backend}
        (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
        from dvc.repo import Repo

        monkeypatch.chdir(root)  # DVC reads the templating values from params.yaml in the working folder
        with Repo(str(root)) as repo:
            deps[backend] = {str(d.def_path) for d in repo.stage.collect("prompt")[0].deps}
    folder = "src/stvg/prompting/backends/{}"
    assert folder.format("synthetic_cpu") in deps["synthetic_cpu"] and folder.format("sam2") in deps["sam2"]
    assert (
        folder.format("sam2") not in deps["synthetic_cpu"]
        and folder.format("synthetic_cpu") not in deps["sam2"]
    )
    shared = {f"src/stvg/prompting/{rel}" for rel in backends.SHARED_CODE}
    assert shared <= deps["sam2"] & deps["synthetic_cpu"], "every hashed shared file is a dependency"


def test_the_executor_and_its_cluster_settings_change_no_key(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    local = stage.key_parts(params_from_dict({}), weights)
    ray = {
        "executor": "ray",
        "ray": {"address": "auto", "gpus_per_task": 1, "max_in_flight": 8, "staging": "/x"},
    }
    assert stage.key_parts(params_from_dict({"prompt": ray}), weights) == local
    assert set(backends.OPERATIONAL_KEYS) <= {f.name for f in dataclasses.fields(PromptParams)}


def test_dvc_tracks_every_prompt_key_but_the_operational_ones(repo_root: Path) -> None:
    """dvc.yaml lists the prompt keys one by one: an operational change must not re-run the stage,
    and a key added to ``PromptParams`` must not be forgotten there."""
    listed = yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["prompt"][
        "params"
    ]
    prompt_keys = {p.removeprefix("prompt.") for p in listed if p.startswith("prompt.")}
    fields = {f.name for f in dataclasses.fields(PromptParams)}
    expected = fields - set(backends.OPERATIONAL_KEYS) - set(backends.BACKENDS) | {"${prompt.backend}"}
    assert prompt_keys == expected and "prompt" not in listed


@pytest.mark.slow
def test_dvc_sees_no_change_when_only_the_executor_changes(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC's own parameter status of the prompt stage: operational keys leave it clean, an output key does not."""
    from dvc.repo import Repo

    shutil.copy(repo_root / "dvc.yaml", tmp_path)
    shutil.copy(repo_root / "params.yaml", tmp_path)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)

    def params_dep(repo: Repo):
        return next(d for d in repo.stage.collect("prompt")[0].deps if hasattr(d, "params"))

    def status_after(edit: dict) -> dict:
        params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
        params["prompt"].update(edit)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        with Repo(str(tmp_path)) as repo:
            dep = params_dep(repo)
            dep.hash_info = saved
            return dep.status()

    with Repo(str(tmp_path)) as repo:
        dep = params_dep(repo)
        dep.save()  # what `dvc repro` records in dvc.lock
        saved = dep.hash_info
    ray = {"address": "auto", "gpus_per_task": 1.0, "max_in_flight": 8, "staging": "/shared/x"}
    assert status_after({"executor": "ray", "ray": ray}) == {}
    assert status_after({"track_fps": 5.0}) == {"params.yaml": {"prompt.track_fps": "modified"}}
