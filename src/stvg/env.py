"""Process environment for offline, self-contained runs: no hub, no telemetry, nothing under $HOME.

Called by the CLI and the flows at start-up (never at import time). Values the user already set win,
so a GPU user can re-enable the Hugging Face hub with ``HF_HUB_OFFLINE=0``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
