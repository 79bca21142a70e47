#!/usr/bin/env bash
# Rehearse `make paper-1gpu-first && make run` on the CPU before spending GPU time on it.
#
# A scratch clone of this checkout's HEAD gets the three paper sets (params.paper.yaml, .1gpu, .first),
# then configs/rehearsal/paper_cpu.yaml (devices, SAM2.1 tiny with random weights, 2 videos per split)
# and the paths of stand-ins from a finished `make run`: its synthetic data, served as the HC-STVG v2
# folder it is formatted as; its trained detector, adopted and pinned with
# `stvg weights fetch yolo12x --from ... --pin-in params.yaml`; its tiny policy as train.model.
# Then the whole flow runs: the sam2 backend on the Ray executor with object-store transfer, the paper's
# GRPO batching (8 prompts x 8 completions, 64 accumulated micro-steps, one optimizer step), evaluation,
# registration. Ray binds every interface, so the flow runs in a network namespace holding only loopback.
#
#     scripts/rehearse_paper_cpu.sh [--keep]        (~5 min on 2 cores; needs root for unshare)
#
# Prints one JSON line; exits non-zero when any stage or gate fails (the scratch clone is then kept).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
keep=0
[ "${1:-}" = "--keep" ] && keep=1
for need in artifacts/detector/weights.pt artifacts/base_model/config.json data/synthetic/anno_v2; do
    if [ ! -e "$need" ]; then
        echo "rehearse_paper_cpu: $need is missing: run \`make run\` first (its outputs are the stand-ins)" >&2
        exit 2
    fi
done
command -v unshare >/dev/null || { echo "rehearse_paper_cpu: unshare (util-linux) is required" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/stvg-rehearsal.XXXXXX")
git clone -q --no-hardlinks "$root" "$scratch/repo"
repo=$scratch/repo
ln -s "$root/.venv" "$repo/.venv"
cp -r "$root/artifacts/base_model" "$scratch/policy"
export PYTHONPATH="$repo/src:$repo" STVG_ROOT="$repo"
stvg() { (cd "$repo" && "$root/.venv/bin/python" -m stvg.cli "$@" >/dev/null); }
stvg params apply params.paper.yaml
stvg params apply params.paper.1gpu.yaml
stvg params apply params.paper.first.yaml
stvg params apply configs/rehearsal/paper_cpu.yaml
stvg weights fetch yolo12x --from "$root/artifacts/detector/weights.pt" --pin-in params.yaml
cat > "$scratch/paths.yaml" <<PATHS
download:
  sources:
    - {name: hcstvg_v2, kind: local, path: "$root/data/synthetic", dest: hcstvg_v2}
train:
  model: "$scratch/policy"
PATHS
stvg params apply "$scratch/paths.yaml"

log=$scratch/pipeline.log
echo "rehearse_paper_cpu: the paper first run on the CPU in $repo (log: $log)" >&2
if ! unshare --net bash -c "ip link set lo up && cd '$repo' && '$root/.venv/bin/python' -m flows.pipeline" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "rehearse_paper_cpu: FAILED; the scratch clone is kept: $scratch" >&2
    exit 1
fi
"$root/.venv/bin/python" - "$repo" <<'PY'
import json, sys
from pathlib import Path

from stvg.cli import STAGES

repo = Path(sys.argv[1])
read = lambda p: json.loads((repo / "artifacts" / p).read_text())
train, metrics = read("train/summary.json"), read("evaluate/metrics.json")
backend, prompt = read("prompt/summary.json")["backend"], read("run_info/prompt.json")
print(json.dumps({
    "bench": "rehearse_paper_cpu",
    "passed": " ".join([*STAGES, "register"]) + ", every gate",
    "prompt": {"backend": backend, **{k: prompt.get(k) for k in (
        "executor", "transfer", "workers", "device", "sam2_hole_filling", "processed", "wall_seconds")}},
    "train": {"global_step": train["global_step"], **train["batching"]},
    "evaluate": {"parse_rate": metrics.get("parse_rate"), "n": metrics.get("n")},
}))
PY
[ "$keep" = 1 ] && echo "rehearse_paper_cpu: kept $scratch" >&2 || rm -rf "$scratch"
