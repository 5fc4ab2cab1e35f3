"""The return trip to the course platform: `make collect` keeps who each student is on Canvas or Moodle, `make grades
LMS=...` writes the platform's grade import and `make feedback LMS=...` its feedback zip.

tests/lms_samples/ holds small made-up files in each platform's documented layout: Canvas's gradebook export/import
(Student, ID = the Canvas user id, SIS User ID, SIS Login ID, Section, "<assignment> (<id>)" columns, read-only score
columns, a "Points Possible" row) and a Moodle assignment's offline grading worksheet ("Participant <id>" in the
Identifier column, Grade, "Last modified (grade)"). Each is read here by the rules of the platform's importer
(Canvas's GradebookImporter, Moodle's assignfeedback_offline grade importer), and so is what the course writes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from notebooks import REPOSITORY

from autograder.grading.intake.collect import collect
from autograder.grading.intake.lms_ids import LmsId, read_ids
from autograder.grading.nbgrader_steps import lms_export, lms_feedback
from autograder.grading.nbgrader_steps.lms_export import export, parse_assignment_ids
from autograder.grading.nbgrader_steps.lms_feedback import bundle

SAMPLES = REPOSITORY / "tests" / "lms_samples"
A, B = "05_residual_blocks", "06_building_a_resnet"
NOW = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
GRADES_FIELDS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
                 "late_submission_penalty", "score", "max_score", "status", "reason", "review")


def canvas_reads(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What Canvas's gradebook import reads: ({assignment column: points possible}, {user id: {column: grade}}),
    by its rules: 'Student' then 'ID' first, the SIS columns, student columns ending with 'Section', a row whose
    first cell holds 'Points Possible', read-only score columns left out, an empty grade meaning no change."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert "Student" in header[0] and "ID" in header[1] and len(header) > 3
    assert header[2:5] == ["SIS User ID", "SIS Login ID", "Section"], "the student columns end with Section"
    columns = {index: name for index, name in enumerate(header) if index >= 5
               and not any(word in name for word in ("Current Score", "Final Score", "Current Grade", "Final Grade"))}
    points, grades = {}, {}
    for row in rows[1:]:
        if "Points Possible" in row[0]:
            points = {name: row[index] for index, name in columns.items()}
            continue
        assert row[1].isdigit(), f"a student row without a Canvas user id: {row}"
        grades[row[1]] = {name: row[index].strip() for index, name in columns.items() if row[index].strip()}
    return points, grades


def moodle_reads(text: str) -> dict[str, tuple[str, str]]:
    """What a Moodle assignment's worksheet upload reads, by its rules: the Identifier, Grade and 'Last modified
    (grade)' columns must all be there; 'Participant <id>' gives the id; an empty grade is skipped."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    identifier, grade, modified = (header.index(name) for name in ("Identifier", "Grade", "Last modified (grade)"))
    read = {}
    for row in rows[1:]:
        assert row[identifier].startswith("Participant ")
        if row[grade]:
            read[row[identifier].removeprefix("Participant ")] = (row[grade], row[modified])
    return read


def build_zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, NOTEBOOK)
    return path


def write_grades(root: Path, rows: list[dict[str, str]]) -> None:
    """grades.csv as `make grades` writes it (nbgrader's columns, then status, reason, review)."""
    with (root / "grades.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, GRADES_FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def grade(student: str, assignment: str, score: str, status: str = "graded", reason: str = "",
          max_score: str = "10.0") -> dict[str, str]:
    return {"assignment": assignment, "student_id": student, "score": score, "max_score": max_score,
            "status": status, "reason": reason, "timestamp": "2026-11-16 10:02:00" if status != "not submitted" else ""}


@pytest.fixture
def canvas_class(tmp_path: Path) -> Path:
    """A grading folder after `make collect` of two Canvas downloads (one student late, one collected but never
    graded) and `make grades`: a scored, a timed-out, an unsubmitted and a hand-copied submission."""
    root = tmp_path / "root"
    collect(build_zip(tmp_path / "a.zip", ["smithjohn_1234_98765_05_residual_blocks.ipynb",
                                          "doejane_LATE_2345_98766_04_residual-1.ipynb",
                                          "leeann_3456_98767_05_residual_blocks.ipynb"]), A, root)
    collect(build_zip(tmp_path / "b.zip", ["smithjohn_1234_99001_06_building_a_resnet.ipynb"]), B, root)
    write_grades(root, [grade("smithjohn", A, "8.5"), grade("doejane", A, "", "timeout", "ran past 600 s"),
                        grade("smithjohn", B, "12.0", max_score="12.0"), grade("doejane", B, "0.0", "not submitted",
                                                                               max_score="12.0"),
                        grade("byhand", A, "7.0")])
    return root


def test_collect_keeps_each_students_canvas_ids_from_the_download_names(canvas_class: Path) -> None:
    ids = {(i.assignment, i.student): i for i in read_ids(canvas_class)}
    assert ids[(A, "smithjohn")] == LmsId(A, "smithjohn", "canvas", "1234", "smithjohn", "98765")
    assert ids[(A, "doejane")].lms_id == "2345" and ids[(A, "doejane")].lms_file_id == "98766"  # late: _LATE_
    assert ids[(B, "smithjohn")].lms_file_id == "99001"
    assert len(ids) == 4


def test_collect_keeps_moodle_participant_ids_per_assignment_and_nothing_for_a_plain_zip(tmp_path: Path) -> None:
    root = tmp_path / "root"
    report = collect(build_zip(tmp_path / "m.zip", ["Jane Doe_412_assignsubmission_file_/lesson.ipynb"]), A, root)
    assert read_ids(root) == [LmsId(A, "Jane_Doe", "moodle", "412", "Jane Doe")]
    assert any("1 moodle ids kept in lms_ids.csv" in line for line in report.lines())
    collect(build_zip(tmp_path / "m2.zip", ["Jane Doe_977_assignsubmission_file_/lesson.ipynb"]), B, root)
    assert [i.lms_id for i in read_ids(root)] == ["412", "977"]  # Moodle gives each assignment its own ids
    collect(build_zip(tmp_path / "p.zip", ["ann.ipynb"]), "03_residual_learning", root)
    assert len(read_ids(root)) == 2


def test_collecting_again_keeps_the_ids_of_a_submission_already_there(tmp_path: Path) -> None:
    root, archive = tmp_path / "root", build_zip(tmp_path / "a.zip", ["smithjohn_1234_98765_04_x.ipynb"])
    collect(archive, A, root)
    (root / "lms_ids.csv").unlink()
    report = collect(archive, A, root)
    assert report.collected == {} and [i.lms_id for i in read_ids(root)] == ["1234"]


def test_canvas_gradebook_has_canvas_columns_a_points_row_and_empty_cells_where_there_is_no_score(
        canvas_class: Path) -> None:
    (path,), sentences = export(canvas_class, "canvas", {A: "4711"}, NOW)
    assert path == canvas_class / "grades-canvas.csv"
    text = path.read_text()
    points, grades = canvas_reads(text)
    assert points == {f"{A} (4711)": "10", B: "12"}
    assert grades == {"1234": {f"{A} (4711)": "8.5", B: "12"}, "2345": {}, "3456": {}}
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[2][:2] == ["doejane", "2345"] and rows[2][5:] == ["", ""], "timeout and not submitted: empty, never 0"
    assert "byhand" not in text
    assert any(line.startswith("byhand: no Canvas id") for line in sentences)
    assert any(line.startswith(f"doejane, {A}: timeout (ran past 600 s): its Canvas cell is left empty, not 0")
               for line in sentences)
    assert any(line.startswith(f"leeann, {A}: collected but not in grades.csv yet") for line in sentences)
    assert not any(line.startswith(f"doejane, {B}") for line in sentences), "not submitted is no submission"


def test_the_documented_canvas_sample_reads_by_the_same_rules() -> None:
    points, grades = canvas_reads((SAMPLES / "canvas_gradebook.csv").read_text())
    assert points == {f"{A} (4711)": "10", f"{B} (4712)": "12"}
    assert grades["1234"] == {f"{A} (4711)": "8.5"}


def test_names_a_student_chose_reach_the_canvas_file_as_text_never_a_formula(tmp_path: Path) -> None:
    root = tmp_path / "root"
    collect(build_zip(tmp_path / "a.zip", ["=cmd_1234_98765_04_x.ipynb"]), A, root)
    write_grades(root, [grade("cmd", A, "5.0")])
    export(root, "canvas", {}, NOW)
    rows = list(csv.reader(io.StringIO((root / "grades-canvas.csv").read_text())))
    assert rows[2][:2] == ["'=cmd", "1234"]


def test_moodle_gets_one_worksheet_per_assignment_keyed_by_participant(tmp_path: Path) -> None:
    root = tmp_path / "root"
    collect(build_zip(tmp_path / "m.zip", ["Jane Doe_412_assignsubmission_file_/lesson.ipynb",
                                          "John Smith_413_assignsubmission_file_/lesson.ipynb"]), A, root)
    write_grades(root, [grade("Jane_Doe", A, "9.5"), grade("John_Smith", A, "", "needs manual grading", "no export"),
                        grade("ann", A, "6.0"), grade("ann", B, "6.0")])
    (path,), sentences = export(root, "moodle", {}, NOW)
    assert path == root / f"grades-moodle-{A}.csv"
    text = path.read_text()
    assert moodle_reads(text) == {"412": ("9.5", "2026-12-07T10:30:00+00:00")}  # 413: empty, Moodle skips it
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)"]
    assert rows[2][:4] == ["Participant 413", "John Smith", "", "10"]
    assert {line.split(":")[0] for line in sentences} == {f"John_Smith, {A}", f"ann, {A}", f"ann, {B}"}
    assert any(line.startswith(f"ann, {B}: no Moodle participant id") for line in sentences)
    assert datetime.fromisoformat(rows[1][4]) == NOW  # what Moodle's strtotime reads


def test_the_documented_moodle_sample_reads_by_the_same_rules() -> None:
    assert moodle_reads((SAMPLES / "moodle_grading_worksheet.csv").read_text()) == {
        "412": ("10.00", "Tuesday, 17 November 2026, 9:15 AM")}


def feedback_page(root: Path, student: str, assignment: str) -> None:
    page = root / "feedback" / student / assignment / f"{assignment}.html"
    page.parent.mkdir(parents=True)
    page.write_text(f"<html>{student}</html>")


def test_canvas_feedback_zip_names_each_page_as_canvas_reupload_matches_it(canvas_class: Path) -> None:
    for student in ("smithjohn", "doejane", "byhand"):
        feedback_page(canvas_class, student, A)
    path, sentences = bundle(canvas_class, "canvas", A)
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert archive.read(names[1]) == b"<html>smithjohn</html>"
    assert names == [f"doejane_2345_98766_{A}-feedback.html", f"smithjohn_1234_98765_{A}-feedback.html"]
    for name in names:  # Canvas: the first two all-digit parts are the user id and the attachment id
        assert [part for part in name.split("_") if part.isdigit()][:2] == name.split("_")[1:3]
    assert any(line.startswith(f"byhand, {A}: no canvas id") for line in sentences)
    assert any(line.startswith(f"leeann, {A}: no feedback page") for line in sentences)


def test_moodle_feedback_zip_uses_the_download_folders(tmp_path: Path) -> None:
    root = tmp_path / "root"
    collect(build_zip(tmp_path / "m.zip", ["Jane Doe_412_assignsubmission_file_/lesson.ipynb"]), A, root)
    feedback_page(root, "Jane_Doe", A)
    path, sentences = bundle(root, "moodle", A)
    assert zipfile.ZipFile(path).namelist() == [f"Jane Doe_412_assignsubmission_file_/{A}-feedback.html"]
    assert sentences == []


def test_the_command_lines_refuse_with_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path)

    def refusal(main, *args: str) -> str:
        assert main([*args, "--root", root]) == 2
        said = capsys.readouterr()
        assert "Traceback" not in said.out + said.err
        return said.err

    assert "grades.csv does not exist: `make grades` writes it" in refusal(lms_export.main, "canvas")
    write_grades(tmp_path, [grade("ann", A, "5.0")])
    assert "LMS='blackboard': choose one of canvas, moodle" in refusal(lms_export.main, "blackboard")
    assert "holds no moodle ids: `make collect` keeps them" in refusal(lms_export.main, "moodle")
    assert "is not <assignment>=<Canvas assignment id>" in refusal(lms_export.main, "canvas", "--canvas-ids",
                                                                   "05_residual_blocks:4711")
    assert "no moodle zip was written" in refusal(lms_feedback.main, "moodle", A)
    assert "LMS='blackboard'" in refusal(lms_feedback.main, "blackboard", A)


def test_canvas_assignment_ids_are_read_from_name_equals_number_pairs() -> None:
    assert parse_assignment_ids(f"{A}=4711, {B}=4712") == {A: "4711", B: "4712"}
    assert parse_assignment_ids("") == {}
