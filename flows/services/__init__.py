"""The team's shared services, started on 127.0.0.1 by one command: ``stvg services up|down|status``.

- PostgreSQL 15: one database for MLflow (plus its basic-auth users) and one for Prefect;
- SeaweedFS (``weed mini``) as the S3-compatible object store, buckets ``mlflow`` and ``dvc``;
- ``mlflow server`` on PostgreSQL, artifacts proxied to ``s3://mlflow``, MLflow's basic-auth app on;
- the Prefect server on PostgreSQL, with HTTP basic auth.

Each lives in a folder under ``.services/`` (git-ignored) with its pidfile, log and data; passwords are
generated once into ``.services/secrets.json`` (mode 600). ``up`` is idempotent (it starts only what is
not running and healthy), ``down`` stops only the processes whose pidfiles it wrote, by PID. ``up``
writes the clients' settings to ``.services/env``, which ``stvg.env.configure_environment`` loads, and
points the checkout's DVC remote at the object store (``.dvc/config.local``).

Only processes are started here: nothing in this package imports mlflow or prefect.
"""
