"""Where did a registered model come from, and how do I get that data and code back?

Run: ``stvg lineage models:/stvg-r1@champion [--json] [--checkout DIR]`` (also ``models:/stvg-r1/3``
or ``models:/stvg-r1/latest``). ``--checkout DIR`` does the restoring itself in the git clone DIR
(``flows/checkout.py``): commit, pins, ``dvc pull``, then ``dvc status``, which must come out clean.

Prints the raw-data, prompted-data and label-set versions (DVC hashes), the git commit, the params
hash and the params logged on the training run, the parent and stage run ids, and the exact commands
that restore that code and data: ``git checkout`` of the commit, the run's copies of ``dvc.lock`` /
``data.dvc`` (logged at registration, since the pins written by ``dvc repro`` may never have been
committed), then ``dvc checkout`` from the local cache or ``dvc pull`` from a DVC remote.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from flows.checkout import CheckoutError, checkout
from flows.dvc import DvcError
from flows.registry import LINEAGE_ARTIFACT_DIR, LINEAGE_KEYS, open_client, version_metrics
from stvg.env import configure_environment

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


class LineageLookupError(LookupError):
    """The model URI is malformed or names nothing in the registry; the message says which."""


def resolve_model_uri(client: MlflowClient, uri: str) -> ModelVersion:
    """The model version behind ``models:/name@alias``, ``models:/name/<version>`` or ``.../latest``."""
    match = _URI.match(uri.strip())
    if not match:
        raise LineageLookupError(
            f"{uri!r} is not a model URI; use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise LineageLookupError(f"model {name!r} has no versions")
            return max(versions, key=lambda v: int(v.version))
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise LineageLookupError(
            f"{uri} not found in the registry at {client.tracking_uri}: {exc.message}"
        ) from exc


def model_lineage(client: MlflowClient, uri: str) -> dict[str, Any]:
    """Everything ``stvg lineage`` prints, as a plain dict (the ``--json`` payload)."""
    version = resolve_model_uri(client, uri)
    run = client.get_run(version.run_id) if version.run_id else None
    info: dict[str, Any] = {
        "model_uri": uri,
        "model": version.name,
        "version": str(version.version),
        "aliases": sorted(version.aliases or []),
        "run_id": version.run_id,
        **{key: version.tags.get(key, "") for key in LINEAGE_KEYS},
        "git_dirty": version.tags.get("git_dirty", ""),
        "params_hash": version.tags.get("params_hash", ""),
        "metrics": version_metrics(client, version),
        "params": dict(sorted(run.data.params.items())) if run else {},
        "stage_run_ids": _stage_runs(client, run.info.experiment_id, run.info.run_id) if run else {},
        "lineage_files": _lineage_files(client, version.run_id) if run else [],
        "tracking_uri": client.tracking_uri,
    }
    info["commands"] = restore_commands(info)
    return info


def restore_commands(info: dict[str, Any]) -> list[str]:
    """Shell lines that bring back the model's code and data, in order."""
    commit = info.get("git_commit") or "<unknown commit>"
    commands = [f"git checkout {commit}"]
    files = [f for f in info.get("lineage_files", []) if f in ("dvc.lock", "data.dvc")]
    if files:
        tmp = ".stvg-lineage"
        copies = " ".join(f"{tmp}/{LINEAGE_ARTIFACT_DIR}/{f}" for f in files)
        commands.append(
            f"MLFLOW_TRACKING_URI={shlex.quote(str(info['tracking_uri']))} mlflow artifacts download "
            f"--run-id {info['run_id']} --artifact-path {LINEAGE_ARTIFACT_DIR} --dst-path {tmp} "
            f"&& cp {copies} . && rm -rf {tmp}"
        )
    commands += [
        "dvc checkout  # data/ and artifacts/ from the local DVC cache",
        "dvc pull      # instead, when the cache lacks them: fetch from the DVC remote",
        f"grep -q {info.get('raw_data_version') or '<raw>'} data.dvc && dvc status  # verify the raw-data pin",
        f"# or all of it in another git clone: stvg lineage {info.get('model_uri', 'MODEL_URI')} --checkout DIR",
    ]
    return commands


def _stage_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return {
        child.data.tags.get("stage") or child.info.run_name or child.info.run_id: child.info.run_id
        for child in children
    }


def _lineage_files(client: MlflowClient, run_id: str) -> list[str]:
    try:
        return sorted(a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, LINEAGE_ARTIFACT_DIR))
    except (MlflowException, OSError):
        return []


def format_lineage(info: dict[str, Any]) -> str:
    """The human-readable report."""
    aliases = ", ".join(info["aliases"]) or "-"
    lines = [
        f"model                  {info['model']} version {info['version']} (aliases: {aliases})",
        f"raw_data_version       {info['raw_data_version']}",
        f"prompted_data_version  {info['prompted_data_version']}",
        f"label_data_version     {info['label_data_version']}",
        f"git_commit             {info['git_commit']}"
        + ("  (working tree was dirty)" if info["git_dirty"] == "true" else ""),
        f"params_hash            {info['params_hash']}",
        f"run_id                 {info['run_id']}",
    ]
    lines += [f"  stage run {stage:<12} {run_id}" for stage, run_id in sorted(info["stage_run_ids"].items())]
    if info["metrics"]:
        lines.append("metrics")
        lines += [f"  {k:<28} {v:.4f}" for k, v in sorted(info["metrics"].items())]
    if info["params"]:
        lines.append("params")
        lines += [f"  {k:<40} {v}" for k, v in info["params"].items()]
    lines.append("restore this model's code and data:")
    lines += [f"  {c}" for c in info["commands"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``stvg lineage MODEL_URI [--json]``."""
    parser = argparse.ArgumentParser(prog="stvg lineage", description=__doc__.splitlines()[0])
    parser.add_argument("model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--checkout",
        metavar="DIR",
        default="",
        help="restore the model's commit, pins and data in the git clone DIR",
    )
    args = parser.parse_args(argv)
    root = configure_environment()
    client = open_client(root)
    try:
        info = model_lineage(client, args.model_uri)
        restored = checkout(client, info, Path(args.checkout), root) if args.checkout else None
    except (LineageLookupError, CheckoutError, DvcError) as exc:
        print(f"stvg lineage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info | ({"checkout": restored.to_dict()} if restored else {}), sort_keys=True))
    else:
        print(format_lineage(info) + (f"\n{restored.text()}" if restored else ""))
    return 0 if restored is None or restored.clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
