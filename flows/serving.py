"""The registered model as an MLflow pyfunc: a raw video and a query in, the answered box tube out.

Signature (so MLflow passes ``params`` through instead of dropping them):

- inputs: ``video`` — the video's bytes base64-encoded (what an HTTP client sends; a ``data:`` URI
  works too), or a path / ``file://`` URI the process may read; ``query`` — the sentence.
- params: ``max_new_tokens``, ``do_sample``, ``temperature``, ``seed`` (defaults: the version's
  ``ground`` params) and ``return_frames`` (also return the annotated mp4, base64, as ``frames_mp4``).
- outputs: ``target_id``, ``start_s``, ``end_s``, ``tube`` (JSON: native frame -> [x1, y1, x2, y2]
  over the answered span), ``answer`` (the raw text), ``ok``, ``error``, ``model_version`` (the
  registry version, where the server knows it), ``model_bundle`` (the content identity of the model
  files), ``timings`` (JSON: decode, prompt, policy, tube, render seconds), ``frames_mp4``.

The artifact is the grounding bundle (``stvg.grounding.bundle``): policy, processor, prompt template,
the prompting configuration and weights by hash, so ``models:/stvg-r1@champion`` alone grounds a raw
video. Bad input (not a video, an empty query, a video over ``max_video_s``, a bad option value)
raises ``MlflowException(INVALID_PARAMETER_VALUE)``, which MLflow's scoring server answers with a 400
JSON error naming the row and the problem before any row is grounded; the server keeps serving. A
valid request whose answer cannot be used (unparsable, an ID the video lacks, nothing detected) is a
200 row with ``ok`` false and the reason in ``error``.

``model_config`` (set at load time, or for ``mlflow models serve`` through
``MLFLOW_PYFUNC_INFERENCE_CONFIG``): ``max_video_s`` (0: the version's ``ground.max_video_s``),
``video_root`` (the folder a server may read paths from; a server without one takes bytes only),
``cache_videos``, ``device`` ("" = cuda when available) and ``model_version``. Unknown params are
dropped by MLflow itself with a warning under ``mlflow models serve``; ``stvg serve`` refuses them.
The model needs this project installed where it is loaded (its ``pip_requirements`` pin the
third-party stack only).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from stvg.config import GroundParams

log = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"  # the bundle folder's name among the pyfunc's artifacts
OPTION_PARAMS = ("max_new_tokens", "do_sample", "temperature", "seed")
PARAM_NAMES = (*OPTION_PARAMS, "return_frames")
OUTPUT_COLUMNS = (
    "target_id", "start_s", "end_s", "tube", "answer", "ok", "error",
    "model_version", "model_bundle", "timings", "frames_mp4",
)  # fmt: skip
MODEL_CONFIG = {"max_video_s": 0.0, "video_root": "", "cache_videos": 0, "device": "", "model_version": ""}
SERVING_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # MLflow's scoring server sets it to "true"


def grounding_signature(defaults: GroundParams) -> ModelSignature:
    """Inputs, outputs and the params schema (defaults from the ``ground`` params)."""
    params = ParamSchema(
        [
            ParamSpec("max_new_tokens", "long", defaults.max_new_tokens),
            ParamSpec("do_sample", "boolean", defaults.do_sample),
            ParamSpec("temperature", "double", defaults.temperature),
            ParamSpec("seed", "long", defaults.seed),
            ParamSpec("return_frames", "boolean", False),
        ]
    )
    inputs = Schema([ColSpec("string", "video"), ColSpec("string", "query")])
    types = {"target_id": "long", "start_s": "double", "end_s": "double", "ok": "boolean"}
    outputs = Schema(
        [ColSpec(types.get(c, "string"), c, required=c in ("answer", "ok", "error")) for c in OUTPUT_COLUMNS]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def bad_input(message: str) -> MlflowException:
    """The exception MLflow's scoring server turns into a 400 JSON error."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class StvgGroundingModel(mlflow.pyfunc.PythonModel):
    """Pyfunc over ``stvg.grounding.Grounder``: loads the bundle and the models once, then answers rows."""

    def load_context(self, context: Any) -> None:
        from stvg.env import configure_environment
        from stvg.grounding.bundle import load_bundle
        from stvg.grounding.grounder import Grounder

        configure_environment()
        config = MODEL_CONFIG | dict(context.model_config or {})
        bundle = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))
        self.workdir = Path(tempfile.mkdtemp(prefix="stvg-grounding-"))
        weakref.finalize(self, shutil.rmtree, self.workdir, True)
        self.video_root = Path(config["video_root"]).resolve() if config["video_root"] else None
        self.grounder = Grounder(
            bundle,
            self.workdir / "maskdb",
            device=str(config["device"]) or None,
            max_video_s=float(config["max_video_s"]) or None,
            cache_videos=int(config["cache_videos"]) or bundle.ground.cache_videos,
            model_info={"version": str(config["model_version"])},
        )
        self.grounder.load()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from stvg.grounding.inputs import GroundingInputError

        params = dict(params or {})
        try:
            options = self.grounder.options(**{k: params[k] for k in OPTION_PARAMS if k in params})
        except GroundingInputError as exc:
            raise bad_input(str(exc)) from exc
        rows = _rows(model_input)
        with contextlib.ExitStack() as stack:
            videos = [self._checked_video(stack, i, row) for i, row in enumerate(rows)]
            out = [
                self._ground(i, path, name, row["query"], options, bool(params.get("return_frames")))
                for i, ((path, name), row) in enumerate(zip(videos, rows, strict=True))
            ]
        return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS), dtype=object)

    def _checked_video(self, stack: contextlib.ExitStack, i: int, row: dict[str, Any]) -> tuple[Path, str]:
        """Row ``i``'s video as a local file, checked (query, decodable, length) before any grounding."""
        from stvg.grounding.inputs import GroundingInputError, check_query, describe, resolved_video

        serving = os.environ.get(SERVING_ENV, "").lower() == "true"
        allow_paths = not serving or self.video_root is not None
        try:
            check_query(row.get("query"))
            path = stack.enter_context(
                resolved_video(row.get("video"), self.workdir / "uploads", self.video_root, allow_paths)
            )
            name = describe(row.get("video"))
            self.grounder.check_video(path, name)
        except GroundingInputError as exc:
            raise bad_input(f"row {i}: {exc}") from exc
        return path, name

    def _ground(
        self, i: int, path: Path, name: str, query: str, options: Any, return_frames: bool
    ) -> dict[str, Any]:
        from stvg.grounding.inputs import GroundingInputError

        try:
            result = self.grounder.ground(path, query, options, name=name)
        except GroundingInputError as exc:  # e.g. frames past the header that do not decode
            raise bad_input(f"row {i}: {exc}") from exc
        record = result.to_dict()
        frames_mp4 = ""
        if return_frames:
            mp4 = self.workdir / "renders" / f"{result.video_id}.mp4"
            record["timings"]["render_s"] = round(self.grounder.render(path, result, mp4), 4)
            frames_mp4 = base64.b64encode(mp4.read_bytes()).decode("ascii")
            mp4.unlink()
        return {
            "target_id": record["target_id"],
            "start_s": record["start_s"],
            "end_s": record["end_s"],
            "tube": json.dumps(record["tube"]),
            "answer": record["answer"],
            "ok": record["ok"],
            "error": record["error"],
            "model_version": record["model"].get("version", ""),
            "model_bundle": record["model"]["bundle"],
            "timings": json.dumps(record["timings"]),
            "frames_mp4": frames_mp4,
        }


def _rows(model_input: Any) -> list[dict[str, Any]]:
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    missing = [c for c in ("video", "query") if c not in frame.columns]
    if missing:
        raise bad_input(f"the request lacks the column(s) {missing}; send video and query")
    if frame.empty:
        raise bad_input("the request holds no rows; send at least one {video, query}")
    return frame.to_dict(orient="records")


# ----------------------------------------------------------------------------------------------- saving


def save_grounding_model(
    path: Path,
    bundle_dir: Path,
    ground: GroundParams,
    *,
    pip_requirements: list[str],
    mlflow_model: Any = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write the pyfunc model folder (MLmodel, signature, the bundle as its artifact) to ``path``."""
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(Path(__file__).with_name("serving_model.py")),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=grounding_signature(ground),
        model_config=dict(MODEL_CONFIG),
        pip_requirements=pip_requirements,
        mlflow_model=mlflow_model,
        metadata=metadata,
    )


# ----------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LocalModel:
    """A model version's bundle on local disk, and what it is."""

    bundle_dir: Path
    name: str = ""  # registered model name ("" for a local folder)
    version: str = ""


def bundle_in(folder: Path) -> Path | None:
    """The bundle folder inside a local model: a bundle itself, or a pyfunc folder holding one."""
    from stvg.grounding.bundle import is_bundle

    for candidate in (folder, folder / "artifacts" / BUNDLE_ARTIFACT):
        if is_bundle(candidate):
            return candidate
    return None


def fetch_model(uri: str, cache_root: Path, client: Any) -> LocalModel:
    """A local copy of ``uri`` (a folder, or ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``).

    Registry versions are downloaded once into ``cache_root`` (keyed by name, version and storage
    location) and reused, so a second ``stvg ground`` starts without a download.
    """
    import hashlib

    from flows.lineage import resolve_model_uri

    local = Path(uri).expanduser()
    if local.is_dir():
        found = bundle_in(local)
        if found is None:
            raise FileNotFoundError(f"{local} holds no grounding model (bundle.json, or artifacts/bundle/)")
        return LocalModel(found)
    if not uri.startswith("models:/"):
        raise FileNotFoundError(
            f"{uri} is neither a model folder nor a models:/NAME@ALIAS or models:/NAME/VERSION URI"
        )
    version = resolve_model_uri(client, uri)
    tag = hashlib.sha256(str(version.source).encode("utf-8")).hexdigest()[:10]
    target = cache_root / version.name / f"v{version.version}-{tag}"
    if not (target / ".complete").is_file():
        _download(str(version.source), target, client.tracking_uri)
    found = bundle_in(target)
    if found is None:
        raise FileNotFoundError(
            f"{uri} (version {version.version}) holds no grounding bundle: it was registered before models "
            "carried their prompting configuration; register a new version (make run)"
        )
    return LocalModel(found, version.name, str(version.version))


def require_registry(tracking_uri: str) -> None:
    """Refuse a local store that does not exist yet (rather than create an empty one and find nothing)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(
            f"no model registry at {tracking_uri}: run `make run` in this repository first, run from the "
            "repository root (or set STVG_ROOT), or set MLFLOW_TRACKING_URI to your MLflow server"
        )


def _download(source: str, target: Path, tracking_uri: str) -> None:
    """Download into a sibling temp folder, then rename: a killed download leaves no half model."""
    import mlflow.artifacts

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # A folder URI lands as dst_path/<its last name>: that folder is the model.
        got = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking_uri
        )
        (Path(got) / ".complete").write_text("")
        if target.exists():
            shutil.rmtree(target)
        Path(got).rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
