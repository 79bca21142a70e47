#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) from pyproject.toml's pins.
# Re-installs only when pyproject.toml changed. Works on CPU machines and on CUDA hosts alike
# (the torch/torchvision pair is resolved first; sam2 is an sdist built without build isolation
# and without its CUDA extension, which only skips mask hole-filling).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
pin() { grep -oE "\"$1==[^\"]+\"" pyproject.toml | tr -d '"'; }
WHEELS="${STVG_WHEELS:-wheels}"
echo "[bootstrap] creating $VENV with $($PY --version)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if [ -d "$WHEELS" ]; then
    # A GPU host without network (README "GPU host"): its own CUDA torch/torchvision, seen through a .pth
    # adding $PY's site-packages as site folders (after the venv's own; their .pth files run), and
    # everything else from $WHEELS (scripts/gpu_host_wheels.sh); nothing is fetched.
    mapfile -t host_site < <("$PY" -c "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])" | sort -u)
    venv_site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    "$VENV/bin/python" scripts/host_packages_pth.py "$venv_site" "${host_site[@]}"
    "$VENV/bin/python" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
    "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" --no-deps -e .
    "$VENV/bin/python" -c "import torch, torchvision" || {
        echo "[bootstrap] $WHEELS/ holds no torch: $PY must have the host's torch and torchvision (PYTHON=...)" >&2
        exit 1
    }
else
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
    "$VENV/bin/pip" install -q "$(pin torch)" "$(pin torchvision)"
    SAM2_BUILD_CUDA=0 "$VENV/bin/pip" install -q --no-build-isolation "$(pin sam2)"
    "$VENV/bin/pip" install -q -e ".[dev]"
fi
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "[bootstrap] done" >&2
