"""Quality gates between stages: great-expectations suites written as lists of ``Expect`` specs.

``core`` holds the framework (``Expect``, ``run_suite``, ``CheckReport``, ``CheckFailed``); each
``checks/<stage>.py`` defines the suite for one table. Importing this package does not import
great_expectations: ``run_suite`` does, when it first runs.
"""

from stvg.checks.core import CheckFailed, CheckReport, Expect, merge_reports, run_suite

__all__ = ["CheckFailed", "CheckReport", "Expect", "merge_reports", "run_suite"]
