"""`stvg serve`'s pieces without a server: webhook authentication, the version swap, param checks, defaults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
import yaml
from mlflow.exceptions import MlflowException

from flows.serve import WEBHOOK_MAX_AGE_S, ServedModel, verify_signature
from flows.serving import PARAM_NAMES, grounding_signature
from stvg.config import GroundParams, params_to_dict


def _signed(secret: str, body: bytes, stamp: int, delivery: str = "d-1") -> dict[str, str]:
    """Headers as MLflow's webhook delivery writes them (HMAC-SHA256 of ``id.timestamp.payload``)."""
    content = f"{delivery}.{stamp}.{body.decode()}".encode()
    digest = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()
    return {
        "x-mlflow-signature": f"v1,{digest}",
        "x-mlflow-delivery-id": delivery,
        "x-mlflow-timestamp": str(stamp),
    }


def test_only_fresh_deliveries_signed_with_the_secret_pass() -> None:
    body = json.dumps({"entity": "model_version_alias", "action": "created"}).encode()
    now = int(time.time())
    assert verify_signature("s3cret", _signed("s3cret", body, now), body) == ""
    assert verify_signature("s3cret", _signed("other", body, now), body) == "signature mismatch"
    assert verify_signature("s3cret", _signed("s3cret", body, now), body + b" ") == "signature mismatch"
    stale = _signed("s3cret", body, now - WEBHOOK_MAX_AGE_S - 5)
    assert "old" in verify_signature("s3cret", stale, body)
    assert verify_signature("s3cret", {}, body).startswith("unsigned delivery")


class _Model:
    def __init__(self, version: str) -> None:
        self.version = version
        self.metadata = f"metadata of {version}"

    def predict(self, data: object, params: dict | None = None) -> tuple[str, dict | None]:
        return self.version, params


def test_a_failed_reload_keeps_the_serving_version() -> None:
    def load(version: str) -> _Model:
        if version == "3":
            raise OSError("artifact store unreachable")
        return _Model(version)

    served = ServedModel("m", "champion", load)
    assert served.reload("1") and served.version == "1"
    assert not served.reload("1")  # already serving it: nothing to do
    assert not served.reload("3")
    assert served.version == "1" and served.predict([], {"seed": 1}) == ("1", {"seed": 1})
    assert served.status()["last_error"] == "version 3: artifact store unreachable"
    assert served.reload("2") and served.metadata == "metadata of 2" and served.status()["last_error"] == ""


def test_unknown_params_are_refused_by_name() -> None:
    served = ServedModel("m", "champion", _Model)
    served.reload("1")
    with pytest.raises(MlflowException, match=r"unknown param\(s\) \['beam_size'\]") as err:
        served.predict([], {"beam_size": 4, "seed": 1})
    assert err.value.get_http_status_code() == 400


def test_signature_params_default_to_the_ground_section(repo_root: Path) -> None:
    on_disk = yaml.safe_load((repo_root / "params.yaml").read_text())["ground"]
    assert on_disk == params_to_dict(GroundParams())  # params.yaml and the dataclass agree: one default
    schema = grounding_signature(GroundParams(max_new_tokens=12)).params
    assert [p.name for p in schema.params] == list(PARAM_NAMES)
    assert {p.name: p.default for p in schema.params}["max_new_tokens"] == 12
