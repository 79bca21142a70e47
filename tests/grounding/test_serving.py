"""Serving the registered champion over HTTP, end to end on 127.0.0.1 in a loopback-only namespace.

A real ``mlflow server`` (sqlite) holds two registered versions of the embedded champion (real
bundles: the trained detector, params.yaml's prompting, scripted tiny policies answering ID 1 over
1-4 s and over 2-5 s). Then:

- ``mlflow models serve -m models:/NAME@champion``: a raw mp4 sent as base64 gets a tube; garbage
  bytes, an empty query and a too-long video get a 400 naming the problem and the server keeps
  serving; ``max_new_tokens=1`` cuts the answer to an unparsable one (the params arrive).
- ``stvg serve``: it registers its webhook with the MLflow server; moving ``champion`` to version 2
  makes the running server load and answer with version 2 (the response says so), with no restart;
  unknown params, server-side paths and forged webhook deliveries are refused.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from mlflow import MlflowClient

from stvg.config import Params, RegistryParams
from tests.grounding.conftest import ANSWER_ID, ANSWER_SPAN, BenchmarkVideo, scripted_policy
from tests.netns import loopback_only
from tests.servers import MLFLOW_SERVER_ENV, free_port, log_tail, mlflow_server_command, server_process

pytestmark = pytest.mark.slow

NAME = "stvg-r1-served"
SECOND_SPAN = (2.0, 5.0)  # version 2's answer
LINEAGE = {
    "raw_data_version": "1" * 32 + ".dir",
    "prompted_data_version": "2" * 32 + ".dir",
    "label_data_version": "3" * 32,
    "git_commit": "4" * 40,
}
REPO = Path(__file__).resolve().parents[2]
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}


def _env(server: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    # `mlflow models serve` starts `uvicorn` by name: the venv's bin folder must be on PATH
    bins = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return os.environ | {
        "MLFLOW_TRACKING_URI": server,
        "PYTHONPATH": path,
        "STVG_ROOT": str(REPO),
        "PATH": bins,
    }


def _post(url: str, payload: dict[str, Any], timeout: float = 600) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _ask(url: str, video: bytes, query: str, **params: Any) -> tuple[int, dict[str, Any]]:
    rows = [{"video": base64.b64encode(video).decode("ascii"), "query": query}]
    return _post(f"{url}/invocations", {"dataframe_records": rows, "params": params})


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _long_video(path: Path, seconds: float, fps: float = 10.0) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for _ in range(int(seconds * fps)):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An MLflow server in a loopback-only namespace (the module's tests and servers run in it)."""
    folder = tmp_path_factory.mktemp("registry")
    with loopback_only():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # A webhook to http://127.0.0.1 needs two opt-ins (MLflow allows https and public addresses only);
        # the server caches its webhook list for MLFLOW_WEBHOOK_CACHE_TTL s (60 by default), shortened
        # here so a webhook registered just after an alias event is used at once.
        env = os.environ | MLFLOW_SERVER_ENV | WEBHOOK_ENV
        cmd = mlflow_server_command(folder, port)
        with server_process(cmd, f"{url}/health", folder / "server.log", env=env, cwd=folder, timeout_s=180):
            yield url


@pytest.fixture(scope="module")
def versions(
    registry: str,
    champion_policy: Path,
    project_params: Params,
    trained_detector_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str]:
    """Two registered versions; ``champion`` points at the first."""
    from dataclasses import replace

    from flows.registry import CHAMPION, register_model
    from flows.tracking import ensure_experiment

    client = MlflowClient(tracking_uri=registry)
    experiment = ensure_experiment(client, "served", tmp_path_factory.mktemp("unused"))
    params = replace(project_params, registry=RegistryParams(model_name=NAME))
    second = scripted_policy(tmp_path_factory.mktemp("v2") / "policy", ANSWER_ID, *SECOND_SPAN)
    registered = []
    for policy, metrics in ((champion_policy, {"m_vIoU": 0.3}), (second, {"m_vIoU": 0.4})):
        run = client.create_run(experiment).info.run_id
        version = register_model(
            client, run, policy, params, LINEAGE, metrics, detector_weights=trained_detector_path
        )
        client.set_terminated(run)
        registered.append(str(version.version))
    client.set_registered_model_alias(NAME, CHAMPION, registered[0])
    return registered[0], registered[1]


def test_mlflow_models_serve_answers_a_raw_video_and_refuses_bad_input(
    registry: str, versions: tuple[str, str], benchmark_video: BenchmarkVideo, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
        "--host", "127.0.0.1", "--port", str(port), "--env-manager", "local", "--timeout", "600",
    ]  # fmt: skip
    env = _env(registry) | {"MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps({"max_video_s": 9.0})}
    video = benchmark_video.path.read_bytes()
    with server_process(cmd, f"{url}/ping", tmp_path / "serve.log", env=env, cwd=tmp_path, timeout_s=300):
        status, body = _ask(url, video, benchmark_video.sentence)
        assert status == 200, body
        (row,) = body["predictions"]
        assert row["ok"] and row["error"] == "", row
        assert (row["target_id"], row["start_s"], row["end_s"]) == (ANSWER_ID, *ANSWER_SPAN)
        tube = {int(f): box for f, box in json.loads(row["tube"]).items()}
        assert tube and all(ANSWER_SPAN[0] <= f / benchmark_video.fps <= ANSWER_SPAN[1] for f in tube)
        assert all(0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240 for x1, y1, x2, y2 in tube.values())
        assert {"decode_s", "prompt_s", "policy_s", "tube_s"} <= set(json.loads(row["timings"]))

        bad = {
            "garbage": (np.random.default_rng(0).bytes(5000), "the red square", "not a decodable video"),
            "empty query": (video, "  ", "query is empty"),
            "too long": (_long_video(tmp_path / "long.mp4", 10.0), "x", "over this model's limit of 9.0 s"),
        }
        for case, (data, query, message) in bad.items():
            status, body = _ask(url, data, query)
            assert status == 400, (case, status, body)
            assert body["error_code"] == "INVALID_PARAMETER_VALUE" and message in body["message"], (
                case,
                body,
            )
            assert "row 0" in body["message"]
        assert urllib.request.urlopen(f"{url}/ping", timeout=10).status == 200  # still serving

        status, body = _ask(url, video, benchmark_video.sentence, max_new_tokens=1)
        assert status == 200, body
        (cut,) = body["predictions"]
        assert cut["answer"] == "<think" and not cut["ok"] and "not parsable" in cut["error"]
        assert json.loads(cut["timings"])["prompt_s"] == 0.0  # the same video: its entry is reused


def test_stvg_serve_follows_the_champion_alias(
    registry: str, versions: tuple[str, str], benchmark_video: BenchmarkVideo, tmp_path: Path
) -> None:
    first, second = versions
    client = MlflowClient(tracking_uri=registry)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "serve",
        "--model",
        f"models:/{NAME}@champion",
        "--port",
        str(port),
    ]
    env = _env(registry) | {"STVG_WEBHOOK_SECRET": "test-secret"}
    video = benchmark_video.path.read_bytes()
    log = tmp_path / "serve.log"
    with server_process(cmd, f"{url}/ping", log, env=env, cwd=tmp_path, timeout_s=300) as proc:
        assert _get(f"{url}/model")["version"] == first
        (hook,) = [h for h in client.list_webhooks() if h.url == f"{url}/registry-webhook"]
        status, body = _ask(url, video, benchmark_video.sentence)
        assert status == 200, body
        (row,) = body["predictions"]
        assert row["model_version"] == first and (row["start_s"], row["end_s"]) == ANSWER_SPAN

        status, body = _ask(url, video, "x", max_new_token=8)  # a typo'd param is refused, not ignored
        assert status == 400 and "unknown param(s) ['max_new_token']" in body["message"]
        status, body = _post(
            f"{url}/invocations", {"dataframe_records": [{"video": str(benchmark_video.path), "query": "x"}]}
        )
        assert status == 400 and "this server reads no paths" in body["message"]
        forged = _post(f"{url}/registry-webhook", {"entity": "model_version_alias", "action": "created",
                                                   "data": {"name": NAME, "alias": "champion", "version": second}})  # fmt: skip
        assert forged[0] == 401 and _get(f"{url}/model")["version"] == first

        client.set_registered_model_alias(NAME, "champion", second)  # the promotion: webhook -> reload
        deadline = time.monotonic() + 300
        while _get(f"{url}/model")["version"] != second:
            assert time.monotonic() < deadline, log_tail(log)
            assert proc.poll() is None, log_tail(log)
            time.sleep(1)
        status, body = _ask(url, video, benchmark_video.sentence)
        assert status == 200, body
        (row,) = body["predictions"]
        assert row["model_version"] == second and (row["start_s"], row["end_s"]) == SECOND_SPAN
        assert row["model_bundle"] != ""
        assert f"now serving {NAME} version {second}" in log_tail(log, 20000)
    assert hook.webhook_id not in {h.webhook_id for h in client.list_webhooks()}  # removed on exit
