"""report.csv, beside the gradebook: one row per graded submission (score, status, reason, review flag, seconds)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from autograder.grading.escape import spreadsheet_cell, terminal_line
from autograder.grading.status import Status

FIELDS = ("student_id", "assignment", "score", "max_score", "status", "reason", "review", "seconds")


@dataclass
class Outcome:
    """One row of the report."""

    student: str
    status: Status
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    review: str = ""  # constructs an instructor may want to look at (flags.py); never changes the score


def read_report(root: Path) -> list[dict[str, str]]:
    """Every row of report.csv (none before the first batch)."""
    path = root / "report.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def write_report(root: Path, assignment: str, outcomes: list[Outcome]) -> Path:
    """report.csv with the rows of the students graded now replaced and every other row kept."""
    graded_now = {spreadsheet_cell(o.student) for o in outcomes}
    rows = [row for row in read_report(root) if row["assignment"] != assignment or row["student_id"] not in graded_now]
    rows += [{"student_id": spreadsheet_cell(o.student), "assignment": assignment,
              "score": f"{o.score:g}" if o.status.keeps_score else "", "max_score": f"{o.max_score:g}",
              "status": str(o.status), "reason": spreadsheet_cell(o.reason), "review": spreadsheet_cell(o.review),
              "seconds": f"{o.seconds:.1f}"} for o in outcomes]
    rows.sort(key=lambda row: (row["assignment"], row["student_id"]))
    path = root / "report.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary(assignment: str, jobs: int, outcomes: list[Outcome], seconds: float) -> str:
    """The table printed at the end of a batch (what a student chose to name, on one line, without control bytes)."""
    width = max([len(o.student) for o in outcomes] + [7])
    lines = [f"{assignment}: {len(outcomes)} submissions in {seconds:.0f} s with {jobs} worker(s)",
             f"{'student':<{width}}  {'score':>11}  {'status':<20}  {'seconds':>7}  reason"]
    for o in outcomes:
        score = f"{o.score:>5g} / {o.max_score:<3g}" if o.status.keeps_score else f"{'-':>5} / {o.max_score:<3g}"
        flag = f" [review: {o.review}]" if o.review else ""
        row = f"{o.student:<{width}}  {score}  {o.status:<20}  {o.seconds:7.1f}  {o.reason}{flag}"
        lines.append(terminal_line(row))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines.append("status counts: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    return "\n".join(lines)
