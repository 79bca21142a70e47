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
echo "[bootstrap] creating $VENV with $($PY --version)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip setuptools wheel
"$VENV/bin/pip" install -q "$(pin torch)" "$(pin torchvision)"
SAM2_BUILD_CUDA=0 "$VENV/bin/pip" install -q --no-build-isolation "$(pin sam2)"
"$VENV/bin/pip" install -q -e ".[dev]"
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "[bootstrap] done" >&2
