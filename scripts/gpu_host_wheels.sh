#!/usr/bin/env bash
# Wheels for installing the project on a GPU host without network (README "GPU host"): everything but the
# host's own CUDA torch/torchvision, for one CPython version on manylinux x86_64.
#
#     scripts/gpu_host_wheels.sh [--python-version 3.12] [--with-deepspeed] [DEST=wheels]
#
# --with-deepspeed adds pyproject's `deepspeed` extra (ZeRO-3 with offload, the full one-GPU run; its
# CPU-Adam kernel compiles on first use, so the host needs a C++ compiler).
#
# Run it on any machine with network and this checkout's venv (sam2's sdist is built against its torch).
# Then, on the host, from the checkout with DEST beside it:
#     python3 -m pip install --no-index --no-deps wheels/*.whl
#     python3 -m pip install --no-index --find-links wheels/ --no-deps -e .
set -euo pipefail
cd "$(dirname "$0")/.."
py_version=3.12
with_deepspeed=0
while [ $# -gt 0 ]; do
    case $1 in
        --python-version) py_version=$2; shift 2 ;;
        --with-deepspeed) with_deepspeed=1; shift ;;
        *) break ;;
    esac
done
dest=${1:-wheels}
pip=(.venv/bin/python -m pip)
# Binary wheels for the host, pinned: many projects publish only manylinux2014 (glibc 2.17) wheels, which
# pip does not take for a newer platform tag unless that tag is named too.
host_wheels=(download --no-deps --only-binary=:all: --python-version "$py_version"
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p "$dest"
"${pip[@]}" "${host_wheels[@]}" -d "$dest" -r configs/gpu-host-requirements.txt
# What the editable install of this project builds with (pyproject.toml [build-system]), for --no-index:
# setuptools is in the list (at a release the host's torch accepts), wheel is not. Nothing here may name a
# package the list holds: pip refuses two versions of one package.
"${pip[@]}" download --no-deps --only-binary=:all: -d "$dest" "wheel==0.48.0"
# sdist-only releases, pure Python once built; sam2 without its CUDA extension (README: SAM2's `_C`).
"${pip[@]}" wheel --no-deps -w "$dest" antlr4-python3-runtime==4.9.3 iopath==0.1.10
SAM2_BUILD_CUDA=0 "${pip[@]}" wheel --no-deps --no-build-isolation -w "$dest" sam2==1.1.0
if [ "$with_deepspeed" = 1 ]; then  # deepspeed is an sdist (pure Python once built); the rest are wheels
    mapfile -t extra < <(.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["deepspeed"]))')
    DS_BUILD_OPS=0 "${pip[@]}" wheel --no-deps --no-build-isolation -w "$dest" "${extra[0]}"
    "${pip[@]}" "${host_wheels[@]}" -d "$dest" "${extra[@]:1}"
fi
echo "gpu_host_wheels: $(ls "$dest"/*.whl | wc -l) wheels for CPython $py_version in $dest/" >&2
