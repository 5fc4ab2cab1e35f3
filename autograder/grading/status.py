"""How one submission's grading ended, and which endings keep a score."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """One row's status in report.csv and grades.csv."""

    GRADED = "graded"  # both runs agree, or the student's own run scored lower: that score stands
    TAMPERED = "tampered"  # the notebook run awarded points the trusted decision did not: only the trusted ones count
    OUT_OF_MEMORY = "out of memory"  # a cell ran out of memory; the cells that finished keep their points
    MANUAL = "needs manual grading"  # a person must decide (lost metadata, a module that cannot be exported...)
    TIMEOUT = "timeout"  # the notebook ran past the wall limit: nothing is scored, a rerun grades it
    CRASHED = "crashed"  # the kernel died: nothing is scored, a rerun grades it
    MALFORMED = "malformed"  # not a notebook that can be read

    @property
    def keeps_score(self) -> bool:
        """Whether grades.csv shows this row's score (otherwise the score is empty, never a silent 0)."""
        return self in (Status.GRADED, Status.TAMPERED, Status.OUT_OF_MEMORY)
