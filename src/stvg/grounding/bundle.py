"""A grounding model on disk: everything from raw pixels to a box tube, in one folder.

    bundle.json     what the folder holds: the prompting configuration the policy was trained with
                    (params ``seed``, ``detector``, ``prompt``), the grounding defaults (``ground``),
                    every file with its size and SHA-256, and the hash of the prompting code
    policy/         the policy's save_pretrained folder (weights, processor, prompt_template.json)
    prompting/      detector.pt, and sam2.pt for the sam2 backend with a checkpoint

The registry logs this folder as the artifact of a model version, so ``models:/stvg-r1@champion``
alone grounds a raw video: the same detector weights, tracker settings, ID rendering and frame
sampling that built the policy's training data, then the policy with its own prompt template. The
embedded default's CPU backend needs no more than the detector; random SAM2 weights (speed runs) are
recorded as ``random:<config>:seed<n>``, as the prompt stage names them.

``load_bundle`` checks every file's size and the prompting weights' SHA-256 (a swapped or truncated
file is refused, naming it), and warns when the installed prompting code differs from the code the
version was built with (its answers may then differ from the evaluated ones). The folder's content
is a pure function of its inputs (no dates, no paths), so identical models give identical bundles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.config import GroundParams, Params, ParamsError, params_from_dict, params_to_dict
from stvg.io import write_json_atomic

log = logging.getLogger(__name__)

FORMAT = 1
RECORD = "bundle.json"
POLICY_DIR = "policy"
DETECTOR_FILE = "prompting/detector.pt"
SAM2_FILE = "prompting/sam2.pt"


class BundleError(RuntimeError):
    """A model folder that cannot be used as it is; the message names the file and the fix."""


@dataclass(frozen=True)
class Bundle:
    """A loaded (verified) grounding model folder."""

    root: Path
    params: Params  # seed, detector and prompt as trained (weight paths point into the folder)
    ground: GroundParams
    record: dict[str, Any]  # bundle.json
    identity: str  # SHA-256 of bundle.json: names every file by content, so equal models share it

    @property
    def policy_dir(self) -> Path:
        return self.root / POLICY_DIR

    @property
    def detector_path(self) -> Path:
        return self.root / DETECTOR_FILE


# ----------------------------------------------------------------------------------------------- writing


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_bundle(out: Path, policy_dir: Path, params: Params, detector_weights: Path) -> dict[str, Any]:
    """Copy the policy and the prompting weights into ``out`` (empty or absent) and write bundle.json."""
    policy_dir, detector_weights = Path(policy_dir), Path(detector_weights)
    if not (policy_dir / "config.json").is_file():
        raise BundleError(f"{policy_dir} holds no policy (config.json); run `dvc repro train` first")
    if not detector_weights.is_file():
        raise BundleError(f"detector weights {detector_weights} not found; run `dvc repro detector` first")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BundleError(f"{out} is not empty; a bundle is written into a fresh folder")
    shutil.copytree(policy_dir, out / POLICY_DIR)
    (out / DETECTOR_FILE).parent.mkdir(parents=True)
    shutil.copyfile(detector_weights, out / DETECTOR_FILE)
    prompt = params_to_dict(params.prompt)
    weights = {"detector": DETECTOR_FILE}
    if params.prompt.sam2 is not None:
        from stvg.prompting.backends import sam2_checkpoint

        checkpoint = sam2_checkpoint(params.prompt)
        if checkpoint:
            shutil.copyfile(checkpoint, out / SAM2_FILE)
            prompt["sam2"]["checkpoint"] = SAM2_FILE
            weights["sam2"] = SAM2_FILE
        else:
            weights["sam2"] = f"random:{params.prompt.sam2.cfg}:seed{params.seed}"
    detector = params_to_dict(params.detector) | {"weights": DETECTOR_FILE}
    record = {
        "format": FORMAT,
        "prompting": {"seed": params.seed, "detector": detector, "prompt": prompt},
        "weights": weights,
        "prompting_code": _prompting_code_hash(params.prompt.backend),
        "ground": params_to_dict(params.ground),
        "files": _manifest(out),
    }
    write_json_atomic(out / RECORD, record)
    return record


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    }


def _prompting_code_hash(backend: str) -> str:
    from stvg.grounding.prompter import prompting_code_hash

    return prompting_code_hash(backend)


# ----------------------------------------------------------------------------------------------- reading


def is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds a bundle.json."""
    return (Path(folder) / RECORD).is_file()


def load_bundle(folder: Path) -> Bundle:
    """Read and verify a bundle; raises BundleError naming the damaged or missing file."""
    root = Path(folder).resolve()
    raw = _read_record(root)
    _verify_files(root, raw)
    prompting = raw["prompting"]
    detector = dict(prompting["detector"]) | {"weights": str(root / DETECTOR_FILE)}
    prompt = dict(prompting["prompt"])
    if (prompt.get("sam2") or {}).get("checkpoint"):
        prompt["sam2"] = {**prompt["sam2"], "checkpoint": str(root / prompt["sam2"]["checkpoint"])}
    try:
        params = params_from_dict(
            {"seed": prompting["seed"], "detector": detector, "prompt": prompt, "ground": raw["ground"]}
        )
    except ParamsError as exc:
        raise BundleError(
            f"{root / RECORD}: its prompting configuration does not load with this code ({exc}); "
            "install the project version the model was registered with (see its git_commit tag)"
        ) from exc
    if raw.get("prompting_code") != _prompting_code_hash(params.prompt.backend):
        log.warning(
            "%s was built with other prompting code than the installed one: its prompts (and answers) "
            "may differ from the evaluated ones; install the commit the model was registered with",
            root,
        )
    identity = hashlib.sha256((root / RECORD).read_bytes()).hexdigest()
    return Bundle(root=root, params=params, ground=params.ground, record=raw, identity=identity)


def _read_record(root: Path) -> dict[str, Any]:
    path = root / RECORD
    if not path.is_file():
        raise BundleError(
            f"{root} has no {RECORD}: not a grounding model folder (register one with make run)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} cannot be read ({exc}); re-download the model version") from exc
    if raw.get("format") != FORMAT:
        raise BundleError(
            f"{path} has format {raw.get('format')!r}, this code reads format {FORMAT}; "
            "install the project version the model was registered with"
        )
    return raw


def _verify_files(root: Path, raw: dict[str, Any]) -> None:
    hashed = {v for v in raw["weights"].values() if not str(v).startswith("random:")}
    for name, info in raw["files"].items():
        path = root / name
        if not path.is_file():
            raise BundleError(f"{path} is missing from the model folder; re-download the model version")
        if path.stat().st_size != info["size"]:
            raise BundleError(
                f"{path} has {path.stat().st_size} bytes, the model version recorded {info['size']}: "
                "the copy is damaged; re-download the model version"
            )
        if name in hashed and sha256_file(path) != info["sha256"]:
            raise BundleError(
                f"{path} does not match the SHA-256 its model version recorded: the file was replaced "
                "or damaged; re-download the model version (never edit a registered model in place)"
            )
