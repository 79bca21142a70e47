"""The ``stvg`` console script: the composition root that puts the orchestration beside the library.

    stvg run [--stages ...]                  the whole pipeline flow (Prefect)            -> flows.pipeline
    stvg promote | stvg lineage MODEL_URI [--checkout DIR]
                                             the model registry (MLflow)                  -> flows.promote / lineage
    stvg retrain run|serve                   retraining when the raw data changed         -> flows.retrain
    stvg services up|down|status             the team services (PostgreSQL, S3, MLflow, Prefect) -> flows.services
    stvg ground VIDEO "QUERY" | stvg serve   ground a raw video with a registered model, serve it -> flows.ground / serve
    stvg <anything else>                     the library's commands (stages, data, score, params, weights)

Dependencies point one way: this module imports ``flows`` and ``stvg``; ``stvg`` never imports
``flows`` (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

import sys

from stvg import cli as library

FLOW_COMMANDS = {
    "run": "flows.pipeline",
    "promote": "flows.promote",
    "lineage": "flows.lineage",
    "retrain": "flows.retrain",
    "services": "flows.services.cli",
    "ground": "flows.ground",
    "serve": "flows.serve",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stvg`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        print(library.__doc__)
        return 0
    if args[0] in FLOW_COMMANDS:
        from stvg.env import configure_environment

        configure_environment()
        return library.call(FLOW_COMMANDS[args[0]], args[1:])
    return library.main(args)


if __name__ == "__main__":
    raise SystemExit(main())
