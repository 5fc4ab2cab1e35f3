"""`make grades LMS=canvas|moodle`: grades.csv turned into the file the platform's grade import takes, each row keyed
by who the student is on the platform (lms_ids.csv, which `make collect` read off the platform's download).

Canvas: one gradebook CSV ("Grades > Import"): Student, ID (the Canvas user id), SIS User ID, SIS Login ID, Section,
then a column per assignment, "<name> (<Canvas assignment id>)" when the id is given, and a "Points Possible" row.
Moodle: one grading worksheet per assignment (the assignment's "Upload grading worksheet"), keyed by "Participant
<id>", since Moodle's participant ids are per assignment and its course-wide CSV import keys users by email, user
name or ID number, none of which a download carries.
A submission without a score (timeout, crash, manual grading, malformed, not submitted) gets an empty cell, which
both platforms read as "leave as it is", never a 0; every student a file cannot hold is told in a sentence.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from autograder.grading.escape import spreadsheet_cell
from autograder.grading.intake.lms_ids import PLATFORMS, LmsId, read_ids
from autograder.grading.nbgrader_steps.export import NOT_SUBMITTED
from autograder.grading.status import Status

CANVAS_STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "    Points Possible"  # the label Canvas's own export puts in the Student column
MOODLE_COLUMNS = ("Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)")
MOODLE_PARTICIPANT = "Participant "  # Moodle's (English) prefix of an Identifier; its importer strips it
KEEPS_SCORE = {str(status) for status in Status if status.keeps_score}
REPOSITORY = Path(__file__).resolve().parents[3]


@dataclass
class Sheet:
    """One file to write: its name in the grading folder and its rows, header first."""

    name: str
    rows: list[list[str]]


@dataclass
class Export:
    """What the platform gets, and a sentence for each student or score it cannot hold."""

    sheets: list[Sheet] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)


def score_cell(row: dict[str, str]) -> str:
    """The score to import, or empty where there is none to give (unscored, not submitted)."""
    keeps = row.get("status") in KEEPS_SCORE
    return f"{float(row['score']):g}" if keeps and row.get("score") else ""


def submitted(row: dict[str, str]) -> bool:
    """Whether grades.csv's row is a submission (scored or not), not a student who handed nothing in."""
    return row.get("status", "") not in ("", NOT_SUBMITTED)


def unscored_sentences(rows: Iterable[dict[str, str]], platform: str) -> list[str]:
    """One sentence per submission that has no score to import."""
    return [f"{row['student_id']}, {row['assignment']}: {row['status']} ({row.get('reason') or 'no reason given'}): "
            f"its {platform} cell is left empty, not 0; grade it, then export again"
            for row in rows if submitted(row) and not score_cell(row)]


def ungraded_sentences(grades: list[dict[str, str]], ids: list[LmsId]) -> list[str]:
    """One sentence per collected submission that grades.csv has no row for yet."""
    graded = {(row["assignment"], row["student_id"]) for row in grades}
    return [f"{identity.student}, {identity.assignment}: collected but not in grades.csv yet (run `make autograde "
            f"A={identity.assignment}`, then `make grades`): its cell is left empty"
            for identity in ids if (identity.assignment, identity.student) not in graded]


def canvas_gradebook(grades: list[dict[str, str]], ids: list[LmsId], assignment_ids: dict[str, str]) -> Export:
    """Canvas's gradebook import: a row per student with a Canvas id, a column per assignment of grades.csv."""
    export = Export(sentences=unscored_sentences(grades, "Canvas") + ungraded_sentences(grades, ids))
    canvas_ids: dict[str, dict[str, str]] = {}  # student -> Canvas user id -> name in the download
    for identity in ids:
        canvas_ids.setdefault(identity.student, {})[identity.lms_id] = identity.lms_name
    assignments = sorted({row["assignment"] for row in grades} | {identity.assignment for identity in ids})
    points = {row["assignment"]: f"{float(row['max_score']):g}" for row in grades if row.get("max_score")}
    cells = {(row["student_id"], row["assignment"]): score_cell(row) for row in grades}
    headers = [f"{name} ({assignment_ids[name]})" if name in assignment_ids else name for name in assignments]
    rows = [[*CANVAS_STUDENT_COLUMNS, *headers],
            [CANVAS_POINTS_ROW, "", "", "", "", *(points.get(name, "") for name in assignments)]]
    for student in sorted({row["student_id"] for row in grades} | set(canvas_ids)):
        known = canvas_ids.get(student, {})
        if len(known) > 1:
            export.sentences.append(f"{student}: the Canvas downloads give two ids ({', '.join(sorted(known))}): "
                                    "left out of the Canvas file; collect again with a PATTERN that tells them apart")
            continue
        if not known:
            if any(submitted(row) for row in grades if row["student_id"] == student):
                export.sentences.append(f"{student}: no Canvas id (not collected from a Canvas download): left out of "
                                        "the Canvas file; enter this student's grades in Canvas by hand")
            continue
        ((canvas_id, lms_name),) = known.items()
        rows.append([lms_name, canvas_id, "", "", "", *(cells.get((student, name), "") for name in assignments)])
    export.sheets.append(Sheet("grades-canvas.csv", rows))
    return export


def moodle_worksheets(grades: list[dict[str, str]], ids: list[LmsId], now: datetime) -> Export:
    """Moodle's grading worksheet, one per assignment that has Moodle ids, keyed by each participant id."""
    export = Export(sentences=unscored_sentences(grades, "Moodle") + ungraded_sentences(grades, ids))
    by_key = {(row["assignment"], row["student_id"]): row for row in grades}
    participants = {(identity.assignment, identity.student): identity for identity in ids}
    for row in grades:
        if (row["assignment"], row["student_id"]) not in participants and submitted(row):
            export.sentences.append(f"{row['student_id']}, {row['assignment']}: no Moodle participant id (not "
                                    "collected from this assignment's Moodle download): not in its worksheet; enter "
                                    "the grade in Moodle by hand")
    for assignment in sorted({identity.assignment for identity in ids}):
        rows = [list(MOODLE_COLUMNS)]
        for identity in sorted((i for i in ids if i.assignment == assignment), key=lambda i: i.student):
            row = by_key.get((assignment, identity.student), {})
            top = f"{float(row['max_score']):g}" if row.get("max_score") else ""
            rows.append([MOODLE_PARTICIPANT + identity.lms_id, identity.lms_name, score_cell(row) if row else "", top,
                         now.isoformat(timespec="seconds")])
        export.sheets.append(Sheet(f"grades-moodle-{assignment}.csv", rows))
    return export


def read_grades(root: Path) -> list[dict[str, str]]:
    """grades.csv's rows; a sentence when `make grades` has not written it."""
    path = root / "grades.csv"
    if not path.exists():
        raise ValueError(f"{path} does not exist: `make grades` writes it from the gradebook first")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write(root: Path, sheet: Sheet) -> Path:
    """The sheet as CSV in the grading folder, every cell a safe spreadsheet cell."""
    path = root / sheet.name
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([spreadsheet_cell(cell) if cell else "" for cell in row] for row in sheet.rows)
    return path


def parse_assignment_ids(text: str) -> dict[str, str]:
    """'05_residual_blocks=4711 06_building_a_resnet=4712' -> {assignment: Canvas assignment id}."""
    pairs = {}
    for item in text.replace(",", " ").split():
        name, _, number = item.partition("=")
        if not name or not number.isdigit():
            raise ValueError(f"CANVAS_IDS: {item!r} is not <assignment>=<Canvas assignment id>, e.g. "
                             "05_residual_blocks=4711 (the number in the assignment's Canvas address)")
        pairs[name] = number
    return pairs


def export(root: Path, platform: str, assignment_ids: dict[str, str], now: datetime) -> tuple[list[Path], list[str]]:
    """Write the platform's import file(s) from root's grades.csv and lms_ids.csv; the paths and the sentences."""
    if platform not in PLATFORMS:
        raise ValueError(f"LMS={platform!r}: choose one of {', '.join(PLATFORMS)}")
    grades, ids = read_grades(root), [i for i in read_ids(root) if i.platform == platform]
    if not ids:
        raise ValueError(f"{root / 'lms_ids.csv'} holds no {platform} ids: `make collect` keeps them when it unpacks "
                         f"a {platform} download (PATTERN=auto or {platform})")
    if platform == "canvas":
        done = canvas_gradebook(grades, ids, assignment_ids)
    else:
        done = moodle_worksheets(grades, ids, now)
    return [write(root, sheet) for sheet in done.sheets], done.sentences


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m autograder.grading.nbgrader_steps.lms_export canvas|moodle [--root R]
    [--canvas-ids S]; exits 2, with a sentence, when there is nothing to export."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("platform", help=" or ".join(PLATFORMS))
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder"))
    parser.add_argument("--canvas-ids", default="", help="<assignment>=<Canvas assignment id> ..., for the headers")
    args = parser.parse_args(argv)
    try:
        paths, sentences = export(args.root, args.platform, parse_assignment_ids(args.canvas_ids), datetime.now(UTC))
    except ValueError as error:
        print(f"grades: {error}", file=sys.stderr)
        return 2
    print("\n".join([*(f"wrote {path}" for path in paths), *sentences]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
