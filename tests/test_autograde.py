"""End to end, as an instructor runs it: submissions in, `make autograde/feedback/grades`, scores out.

Every lesson is graded in one batch: a student who solved it (full marks) and students with its typical mistakes
(tests/cases/, up to three per notebook), who must lose exactly the points of the cells that test the broken
properties. An untouched lesson earning nothing is checked where it costs less: tests/test_notebooks.py runs every
released lesson (each graded check must fail), and the hostile corpus grades an untouched lesson 05 end to end.
"""

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from cases import SOLVER, LessonCase, Mistake, all_cases, students
from nbgrader.api import Gradebook
from notebooks import REPOSITORY, notebook_path

from autograder.grading.intake.lms_ids import LmsId, record_ids

BIN = Path(sys.executable).parent
CASES = all_cases()


def solved_source(cell: nbformat.NotebookNode) -> str:
    """What a student who solved the exercise would have typed: the solution without nbgrader's markers."""
    return "\n".join(line for line in cell.source.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def make_submission(assignment: str, mistakes: tuple[Mistake, ...] | None) -> nbformat.NotebookNode:
    """The released lesson with every solution cell filled in and then mistaken; untouched when mistakes is None."""
    lesson = nbformat.read(notebook_path("lessons", assignment), as_version=4)
    if mistakes is None:
        return lesson
    solutions = {cell.id: cell for cell in nbformat.read(notebook_path("solutions", assignment), as_version=4).cells}
    for cell in lesson.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solved_source(solutions[cell.id])
            for mistake in mistakes:
                if mistake.cell == cell.id:
                    assert mistake.old in cell.source, f"{assignment}/{cell.id} changed: update tests/cases"
                    cell.source = cell.source.replace(mistake.old, mistake.new)
    return lesson


def make(target: str, root: Path, **variables: str) -> str:
    """Run a Makefile target against a scratch grading folder, as the instructor would; what it printed."""
    env = {**os.environ, "GRADING_ROOT": str(root)}
    args = ["make", "--no-print-directory", target, f"VENV={BIN.parent}", *(f"{k}={v}" for k, v in variables.items())]
    done = subprocess.run(args, cwd=REPOSITORY, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """Grade the whole class once, every lesson, then let each test read the results."""
    root = tmp_path_factory.mktemp("course")
    for case in CASES:
        for student, submission in students(case).items():
            folder = root / "submitted" / student / case.assignment
            folder.mkdir(parents=True)
            nbformat.write(make_submission(case.assignment, submission.edits), folder / f"{case.assignment}.ipynb")
    make("autograde", root, A=" ".join(case.assignment for case in CASES), J="2")  # one pool for every lesson
    make("feedback", root, A="all")
    make("grades", root)
    return root


def cell_scores(root: Path, student: str, assignment: str) -> dict[str, tuple[float, float]]:
    """grade id -> (score, max score) of one graded notebook."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return {grade.name: (grade.score, grade.max_score) for grade in notebook.grades}


def expected_score(case: LessonCase, student: str, root: Path) -> float:
    """Full marks minus the points of the cells the student's mistakes must fail (0 where nothing was submitted)."""
    submission = students(case).get(student)
    if submission is None:
        return 0.0
    scores = cell_scores(root, student, case.assignment)
    return case.full_marks - sum(scores[cell][1] for cell in submission.failing)


def test_grades_csv_has_one_row_per_student_and_assignment_with_the_expected_score(graded):
    with open(graded / "grades.csv") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["score"]) for row in csv.DictReader(handle)}
    everyone = {student for case in CASES for student in students(case)}
    expected = {(student, case.assignment): expected_score(case, student, graded)
                for case in CASES for student in everyone}
    assert rows == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.assignment)
def test_the_solution_earns_every_point(graded, case):
    scores = cell_scores(graded, SOLVER, case.assignment)
    assert sum(score for score, _ in scores.values()) == case.full_marks == sum(top for _, top in scores.values())


@pytest.mark.parametrize(("case", "student"), [(case, student) for case in CASES for student in students(case)
                                                if student != SOLVER],
                         ids=lambda value: getattr(value, "assignment", value))
def test_each_mistake_loses_exactly_the_points_of_its_property(graded, case, student):
    submission = students(case)[student]
    scores = cell_scores(graded, student, case.assignment)
    failed = {cell for cell, (score, top) in scores.items() if score < top}
    assert failed == submission.failing, f"{student} carries {', '.join(submission.mistakes)}"


def test_honest_submissions_are_graded_without_a_flag(graded):
    with open(graded / "report.csv") as handle:
        flagged = [row for row in csv.DictReader(handle) if row["status"] != "graded"]
    assert not flagged, "honest work was flagged: the re-check disagrees with nbgrader"


def test_feedback_is_written_for_every_submission_and_names_the_broken_property(graded):
    for case in CASES:
        for student in students(case):
            page = graded / "feedback" / student / case.assignment / f"{case.assignment}.html"
            assert page.exists(), page
    page = graded / "feedback" / "l05-mistakes-1" / "05_residual_blocks" / "05_residual_blocks.html"
    if page.exists():  # absent when GRADING_CASES leaves lesson 05 out
        assert "no ReLU runs after the addition" in page.read_text()


def test_grades_and_feedback_go_back_to_moodle_keyed_by_the_ids_collect_kept(graded):
    """As if one lesson's submissions had come from a Moodle download (`make collect` keeps each participant id in
    lms_ids.csv): `make grades LMS=moodle` gives each its grades.csv score, `make feedback LMS=moodle` zips each page
    in the folder Moodle's feedback upload matches."""
    assignment = CASES[0].assignment
    with open(graded / "grades.csv") as handle:
        scores = {row["student_id"]: row["score"] for row in csv.DictReader(handle) if row["assignment"] == assignment}
    participants = {student: str(400 + number) for number, student in enumerate(sorted(students(CASES[0])))}
    record_ids(graded, [LmsId(assignment, student, "moodle", number, f"Name {student}")
                        for student, number in participants.items()])
    make("grades", graded, LMS="moodle")
    make("feedback", graded, A=assignment, LMS="moodle")
    with open(graded / f"grades-moodle-{assignment}.csv") as handle:
        worksheet = {row["Identifier"]: row["Grade"] for row in csv.DictReader(handle)}
    assert worksheet == {f"Participant {number}": f"{float(scores[student]):g}" if scores[student] else ""
                         for student, number in participants.items()}
    with zipfile.ZipFile(graded / f"feedback-moodle-{assignment}.zip") as archive:
        assert sorted(archive.namelist()) == sorted(
            f"Name {student}_{number}_assignsubmission_file_/{assignment}-feedback.html"
            for student, number in participants.items())


DROP_IN_REASONS = {"l01-drop-in-gradient-profile": "changed the gradients", "l02-drop-in-make-mlp": "ready-made",
                   "l05-drop-in-torchvision": "ready-made", "l06-drop-in-convnet": "ready-made"}


@pytest.mark.parametrize(("case", "student", "drop_in"), [
    (case, student, name) for case in CASES for student, submission in students(case).items()
    for name in submission.mistakes if name in DROP_IN_REASONS], ids=lambda value: getattr(value, "assignment", value))
def test_a_drop_in_from_the_course_or_torchvision_earns_nothing_and_the_feedback_says_why(graded, case, student,
                                                                                          drop_in):
    page = graded / "feedback" / student / case.assignment / f"{case.assignment}.html"
    assert DROP_IN_REASONS[drop_in] in page.read_text()
