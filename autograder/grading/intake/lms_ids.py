"""lms_ids.csv, beside the gradebook: who each collected student is on the course platform, for the return trip.

`make collect` reads it off a Canvas or Moodle download's file names; `make grades LMS=...` and `make feedback
LMS=...` key what the platform imports by it. Canvas names a submission `<name>_<user id>_<attachment id>_<file>`
(the user id keys its gradebook import, the attachment id its "Re-upload submissions"); Moodle names a folder
`<Full name>_<participant id>_assignsubmission_file_`, and its participant ids differ from one assignment to the
next, so each row belongs to one assignment.
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from autograder.grading.escape import spreadsheet_cell

FILE_NAME = "lms_ids.csv"
PLATFORMS = ("canvas", "moodle")  # the download layouts whose file names say who the student is


@dataclass(frozen=True)
class LmsId:
    """One student's identity on the platform, as one assignment's download gave it."""

    assignment: str
    student: str  # the folder name under submitted/ (what grades.csv calls student_id)
    platform: str
    lms_id: str  # Canvas: the user id; Moodle: the participant id (of this assignment)
    lms_name: str  # the name in the download: Canvas's "lastfirst", Moodle's full name
    lms_file_id: str = ""  # Canvas: the id of the submitted file (attachment); Moodle: none


FIELDS = tuple(field.name for field in fields(LmsId))


def read_ids(root: Path) -> list[LmsId]:
    """Every identity collected so far (none before the first Canvas or Moodle download)."""
    path = root / FILE_NAME
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [LmsId(**{name: row.get(name) or "" for name in FIELDS}) for row in csv.DictReader(handle)]


def record_ids(root: Path, collected: list[LmsId]) -> Path:
    """lms_ids.csv with the rows of the (assignment, student) pairs collected now replaced and every other row kept."""
    cells = [LmsId(*(spreadsheet_cell(value) for value in astuple(identity))) for identity in collected]
    replaced = {(identity.assignment, identity.student) for identity in cells}
    kept = [identity for identity in read_ids(root) if (identity.assignment, identity.student) not in replaced]
    path = root / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows(astuple(identity) for identity in sorted(kept + cells, key=astuple))
    return path
