"""Process environment for offline, self-contained runs: no hub, no telemetry, nothing under $HOME.

Called by the CLI and the flows at start-up (never at import time). Values the user already set win,
so a GPU user can re-enable the Hugging Face hub with ``HF_HUB_OFFLINE=0``.

When the team services run (``stvg services up`` writes ``.services/env``), their client settings
(``MLFLOW_TRACKING_URI`` and credentials, ``PREFECT_API_URL``, the DVC remote) are loaded the same way,
so ``make run``, ``stvg …`` and the flows use the services without any other step. ``STVG_SERVICES_ENV``
names another env file (a second clone pointing at the same services) or ``none`` (ignore it).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

SERVICES_ENV_VAR = "STVG_SERVICES_ENV"  # path of the services' env file, or "none"
SERVICES_DIR_NAME = ".services"  # per-checkout folder of the team services (git-ignored)
SERVICES_ENV_NAME = "env"

log = logging.getLogger(__name__)


def project_root() -> Path:
    """The repository root: $STVG_ROOT, else the nearest parent of the CWD holding params.yaml."""
    if os.environ.get("STVG_ROOT"):
        return Path(os.environ["STVG_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "params.yaml").is_file():
            return d
    return here


def project_env(root: Path) -> dict[str, str]:
    """The environment variables that keep every tool offline and writing inside the project."""
    cache = root / ".cache"
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(cache / "huggingface"),
        "HF_DATASETS_CACHE": str(cache / "huggingface" / "datasets"),
        "TOKENIZERS_PARALLELISM": "false",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(cache / "ultralytics"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "TRITON_CACHE_DIR": str(cache / "triton"),  # TRL's CUDA loss kernels, compiled at the first step
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        "DVC_NO_ANALYTICS": "1",
        "GIT_PYTHON_REFRESH": "quiet",
    }


def configure_environment(root: Path | None = None) -> Path:
    """Set the project environment (without overriding the user's values) and return the root."""
    root = root or project_root()
    env_file = services_env_file(root)
    if env_file is not None:
        for key, value in read_env_file(env_file).items():
            os.environ.setdefault(key, value)
    for key, value in project_env(root).items():
        os.environ.setdefault(key, value)
    ensure_ultralytics_fonts(Path(os.environ["YOLO_CONFIG_DIR"]))
    return root


def ensure_ultralytics_fonts(config_dir: Path) -> None:
    """Place a TTF where Ultralytics looks for Arial, so it never fetches fonts from the internet.

    Ultralytics only needs *a* TrueType file under those names for its plot labels; matplotlib ships
    DejaVu Sans, which is used in their place.
    """
    target_dir = config_dir / "Ultralytics"
    names = ("Arial.ttf", "Arial.Unicode.ttf")
    if all((target_dir / n).is_file() for n in names):
        return
    try:
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (target_dir / name).is_file():
            shutil.copyfile(src, target_dir / name)


def services_env_file(root: Path) -> Path | None:
    """The services' env file to load: ``$STVG_SERVICES_ENV``, else ``<root>/.services/env``; None if absent.

    A ``STVG_SERVICES_ENV`` naming a missing file is reported (the run would otherwise silently use the
    local stores instead of the services the user asked for).
    """
    named = os.environ.get(SERVICES_ENV_VAR, "")
    if named.lower() == "none":
        return None
    path = Path(named) if named else Path(root) / SERVICES_DIR_NAME / SERVICES_ENV_NAME
    if path.is_file():
        return path
    if named:
        log.warning(
            "%s=%s: no such file; using the local stores (run `stvg services up`)", SERVICES_ENV_VAR, named
        )
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (an ``export`` prefix, shell quoting and ``#`` comments allowed) as a dict."""
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(
                f"{path}:{number}: expected KEY=VALUE, got {line[:40]!r}; regenerate it with `stvg services up`"
            )
        words = shlex.split(raw, comments=True)
        values[key.strip()] = words[0] if words else ""
    return values


def format_env_file(values: Mapping[str, str], header: str) -> str:
    """The text ``read_env_file`` reads back (also valid for ``source`` in a shell): quoted values."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"export {key}={shlex.quote(str(value))}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
