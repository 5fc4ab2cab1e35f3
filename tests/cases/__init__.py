"""One grading case per lesson: the solution earns full marks and each mistake loses exactly its own cells' points.

Grading a notebook costs tens of seconds on CI's two cores, so a mistaken student carries up to three of a lesson's
mistakes at once: each in its own answer cell, failing its own test cells, none shared. The cells that must fail
are then the union; a mistake that broke a cell it should not, or broke nothing, still shows.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field

SOLVER = "solver"
MISTAKES_PER_STUDENT = 3


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


@dataclass(frozen=True)
class Student:
    """One submission of a lesson: its edits to the solved notebook, the cells that must fail, which mistakes."""

    edits: tuple[Mistake, ...]
    failing: frozenset[str]
    mistakes: tuple[str, ...] = ()


def students(case: LessonCase) -> dict[str, Student]:
    """The solver and the mistaken students of a lesson, mistakes grouped as the module docstring says."""
    groups: list[list[str]] = []
    for name, (edits, failing) in case.mistakes.items():
        cells = {edit.cell for edit in edits}
        for group in groups:
            taken_cells = {edit.cell for other in group for edit in case.mistakes[other][0]}
            taken_failing = set().union(*(case.mistakes[other][1] for other in group))
            if len(group) < MISTAKES_PER_STUDENT and not cells & taken_cells and not failing & taken_failing:
                group.append(name)
                break
        else:
            groups.append([name])
    prefix = case.assignment.split("_")[0]
    found = {SOLVER: Student((), frozenset())}
    for number, group in enumerate(groups, 1):
        edits = tuple(edit for name in group for edit in case.mistakes[name][0])
        failing = frozenset().union(*(case.mistakes[name][1] for name in group))
        found[f"l{prefix}-mistakes-{number}"] = Student(edits, failing, tuple(group))
    return found
