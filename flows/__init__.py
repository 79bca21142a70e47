"""Orchestration: Prefect flows over DVC stages, with MLflow tracking and great-expectations gates.

The project environment is set here, before any flow module imports Prefect: Prefect reads
``PREFECT_HOME`` (project-local state under ``.prefect/``) and its analytics switch when it is first
imported. Values the user already set win (``stvg.env.configure_environment`` only fills gaps).
"""

from stvg.env import configure_environment

configure_environment()
