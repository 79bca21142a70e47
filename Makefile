# STVG-R1 pipeline. `make run` = the full pipeline on the embedded default; `make test` = the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export STVG_ROOT := $(CURDIR)

.PHONY: help venv run test test-fast test-gpu gpu-report lint format pipeline mlflow-ui prefect-server paper paper-1gpu paper-1gpu-first bench \
	retrain-serve services services-down services-status

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-16s %s\n", $$1, $$2}'

venv: ## create/reuse .venv from pyproject.toml pins
	@scripts/bootstrap.sh

run: venv ## run the whole pipeline flow on the embedded default (download -> ... -> registered model)
	$(PY) -m flows.pipeline

test: venv ## lint, then the test suite (everything but GPU tests, which skip without CUDA)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "not gpu" tests

test-fast: venv ## unit + stage tests only (no slow marker)
	$(PY) -m pytest -m "not slow and not gpu" tests

test-gpu: venv ## GPU tests (tests/gpu; they skip without CUDA)
	$(PY) -m pytest -m gpu tests

gpu-report: ## one-shot GPU report on one H100/H200 (< 8 min; PYTHON=... for a host without .venv)
	PYTHON=$${PYTHON:-$(PY)} benchmarks/gpu_report.sh --out gpu_report.json

lint: venv ## ruff lint + format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv ## ruff autoformat
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

paper: venv ## switch params.yaml to the paper-scale set, 8 GPUs (git checkout params.yaml to switch back)
	$(VENV)/bin/stvg params apply params.paper.yaml

paper-1gpu: venv ## the paper-scale set on one GPU (same group size and prompts per step, by accumulation)
	$(VENV)/bin/stvg params apply params.paper.yaml && $(VENV)/bin/stvg params apply params.paper.1gpu.yaml

paper-1gpu-first: paper-1gpu ## a first run of the one-GPU paper set: 8 videos per split, one GRPO step
	$(VENV)/bin/stvg params apply params.paper.first.yaml

mlflow-ui: venv ## open the MLflow UI on http://127.0.0.1:5000 over the local store
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --default-artifact-root mlflow/artifacts --host 127.0.0.1 --port 5000

prefect-server: venv ## start the local Prefect server on http://127.0.0.1:4200
	PREFECT_HOME=$(CURDIR)/.prefect $(VENV)/bin/prefect server start --host 127.0.0.1

bench: venv ## run the CPU benchmarks (each prints JSON lines)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

retrain-serve: venv ## serve the weekly retraining deployment (needs `make prefect-server`)
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_API_URL=http://127.0.0.1:4200/api $(PY) -m flows.retrain serve --cron "0 3 * * 1"

services: venv ## start the team services on 127.0.0.1 (PostgreSQL, S3 store, MLflow, Prefect); `make run` then uses them
	$(VENV)/bin/stvg services up

services-down: venv ## stop the services `make services` started (by PID)
	$(VENV)/bin/stvg services down

services-status: venv ## PID, health, URL and log of each service
	$(VENV)/bin/stvg services status
