"""Errors and rejection records for annotation files: every message names the file, the sample and the fix."""

from __future__ import annotations

from dataclasses import dataclass

SKIP_HINT = "set data.skip_invalid: true in params.yaml to drop such samples and list them instead"


class AnnotationError(ValueError):
    """An annotation file or one of its samples is unusable.

    ``sample_id`` is None when the whole file is at fault (unreadable, bad JSON, wrong top-level type).
    """

    def __init__(self, file: str, reason: str, *, sample_id: str | None = None, fix: str = "") -> None:
        self.file = file
        self.sample_id = sample_id
        self.reason = reason
        where = f"{file}: sample {sample_id!r}" if sample_id is not None else file
        hint = fix or (
            f"fix the entry, or {SKIP_HINT}" if sample_id is not None else "fix or replace the file"
        )
        super().__init__(f"{where}: {reason} ({hint})")


@dataclass(frozen=True)
class InvalidSample:
    """A sample dropped under ``skip_invalid`` (or by the data set's own protocol), and why."""

    file: str
    sample_id: str
    reason: str
    protocol: bool = False  # dropped by the data set's own protocol (not a defect; not capped by the gate)
