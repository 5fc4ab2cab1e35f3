"""One grading case per lesson: the solution earns full marks, the untouched lesson 0, each mistake its own loss."""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer: in solution cell `cell`, the text `old` becomes `new`."""

    cell: str
    old: str
    new: str


@dataclass(frozen=True)
class LessonCase:
    """What grading one lesson must give: full marks, and for each mistaken student exactly which cells fail."""

    assignment: str
    full_marks: float
    # student id -> (the edits in their otherwise solved notebook, the grade ids of the test cells that must fail)
    mistakes: dict[str, tuple[tuple[Mistake, ...], frozenset[str]]] = field(default_factory=dict)


def all_cases() -> list[LessonCase]:
    """Every `CASE` defined by a module of this package, in lesson order; GRADING_CASES=a,b keeps only those."""
    cases = [importlib.import_module(f"{__name__}.{info.name}").CASE for info in pkgutil.iter_modules(__path__)]
    wanted = [name for name in os.environ.get("GRADING_CASES", "").split(",") if name]
    return sorted((c for c in cases if not wanted or c.assignment in wanted), key=lambda case: case.assignment)
