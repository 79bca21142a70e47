#!/usr/bin/env bash
# One-shot GPU report on one H100/H200, in under 8 minutes: the GPU tests, paper-setting prompting
# (SAM2.1-L + YOLO12-x architectures vs bare SAM2 on the same objects; peak GPU and CPU memory of a
# 300- vs a 900-frame clip) and one Qwen2.5-VL-7B GRPO step (n = 8, ~2k visual tokens).
#
#   benchmarks/gpu_report.sh [--out gpu_report.json]          # on the GPU host, from the repository root
#   benchmarks/gpu_report.sh --dry-run [--out FILE]           # the same steps on the CPU at toy sizes (CI)
#
# Every measurement is printed as one JSON line and all of them are written to one JSON file (default
# gpu_report.json). A step that fails or runs past its time limit is recorded as such and the report
# goes on; a step's measurements printed before it stopped are kept. The 8 minutes are one budget: a
# step may use what the steps before it left, while the later steps keep their reserve. Python: $PYTHON, with the project installed (README "GPU host"); default: the checkout's .venv
# (what `make run` or bootstrap made), else python3.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3
fi
OUT="gpu_report.json"
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--dry-run] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac   # relative to where the user ran it, not the checkout
cd "$ROOT"
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export STVG_ROOT="$ROOT"
LINES="$(mktemp)"
trap 'rm -f "$LINES" "$LINES".*' EXIT

# run NAME LIMIT_S COMMAND...: stream the command's output, keep its JSON lines, record its outcome
run() {
  local name="$1" limit="$2"; shift 2
  local start end rc
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LINES.$name"
  rc=${PIPESTATUS[0]}
  end=$(date +%s)
  # the measurements' JSON objects (double-quoted keys), not a Trainer's printed dicts
  grep -E '^\{"[^"]+": .*\}$' "$LINES.$name" >> "$LINES"
  local status=ok
  [ "$rc" -ne 0 ] && status=failed
  # 124: stopped at the limit; 137: it ignored the TERM and was killed 10 s later
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$((end - start))" -ge "$limit" ]; }; then
    status=timed_out
  fi
  printf '{"bench": "gpu_report/step", "step": "%s", "status": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' \
    "$name" "$status" "$rc" "$((end - start))" "$limit" | tee -a "$LINES"
}

if [ "$DRY" -eq 1 ]; then
  export STVG_GPU_TESTS_ON=cpu   # tests/gpu on the CPU at small sizes (tests/gpu/conftest.py)
  # limits for a loaded 2-core CI machine (idle: ~1-2 min each); the GPU limits below fit 8 minutes
  run gpu_tests 900 "$PY" -m pytest -q -m gpu tests/gpu -p no:cacheprovider --junitxml="$LINES.junit.xml"
  run gpu_prompt 600 "$PY" benchmarks/gpu_prompt.py --dry-run
  run gpu_grpo_step 600 "$PY" benchmarks/gpu_grpo_step.py --tiny --steps 2
else
  BUDGET=480 PROMPT_RESERVE=150 GRPO_RESERVE=150   # seconds: the whole report, and what each later step keeps
  began=$(date +%s)
  left() {   # seconds of the budget left once a reserve is kept (at least 30: `timeout 0` never stops)
    local n=$((BUDGET - ($(date +%s) - began) - $1))
    echo $((n < 30 ? 30 : n))
  }
  run gpu_tests "$(left $((PROMPT_RESERVE + GRPO_RESERVE)))" \
    "$PY" -m pytest -q -m gpu tests/gpu -p no:cacheprovider --junitxml="$LINES.junit.xml"
  run gpu_prompt "$(left "$GRPO_RESERVE")" "$PY" benchmarks/gpu_prompt.py
  run gpu_grpo_step "$(left 0)" "$PY" benchmarks/gpu_grpo_step.py --steps 2
fi

"$PY" - "$LINES" "$LINES.junit.xml" "$OUT" "$DRY" <<'EOF'
import json, platform, sys, xml.etree.ElementTree as ET
lines, junit, out, dry = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
records = []
for line in open(lines):
    try:  # a line the filter let through that is not JSON is dropped, never the whole report
        records.append(json.loads(line))
    except ValueError:
        print(f"gpu_report: skipped a line that is not JSON: {line.strip()[:120]}", file=sys.stderr)
tests = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
try:
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests = {k: int(suite.get(k, 0)) for k in tests}
except (OSError, ET.ParseError):
    pass
tests["passed"] = tests["tests"] - tests["failures"] - tests["errors"] - tests["skipped"]
record = {"bench": "gpu_report/tests", **tests}
print(json.dumps(record))
try:
    import torch
    machine = {"torch": torch.__version__, "cuda": torch.version.cuda,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
except ImportError:
    machine = {}
report = {"dry_run": dry, "python": platform.python_version(), "machine": platform.machine(),
          **machine, "records": records + [record]}
with open(out, "w") as fh:
    json.dump(report, fh, indent=1)
print(json.dumps({"bench": "gpu_report", "written": out, "records": len(report["records"])}))
failed = [r["step"] for r in records if r.get("bench") == "gpu_report/step" and r["status"] != "ok"]
sys.exit(1 if failed or tests["failures"] or tests["errors"] else 0)
EOF
