"""End to end, as an instructor runs it: submissions in, `make autograde/feedback/grades`, scores out."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from notebooks import REPOSITORY, notebook_path

BIN = Path(sys.executable).parent
L01, L04 = "01_vanishing_gradients", "04_residual_blocks"

RELU_BEFORE_ADD = ("""        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))""", """        out = self.relu(self.bn2(self.conv2(out)))
        return out + self.shortcut(x)""")
NO_PROJECTION = ("""        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
""", "")

# student -> assignment -> edits of the BasicBlock solution (None: submit the untouched lesson)
SUBMISSIONS = {
    "alice": {L01: [], L04: []},
    "bob": {L01: None, L04: None},
    "carol": {L04: [RELU_BEFORE_ADD]},
    "dave": {L04: [NO_PROJECTION]},
}
FULL = {L01: 5, L04: 18}
EXPECTED_FAILED_CELLS = {
    ("alice", L01): set(), ("alice", L04): set(),
    ("carol", L04): {"basic-block-relu-after-add"},
    ("dave", L04): {"basic-block-projection"},
}


def solved_source(cell: nbformat.NotebookNode) -> str:
    """What a student who solved the exercise would have typed: the solution without nbgrader's markers."""
    return "\n".join(line for line in cell.source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def make_submission(assignment: str, edits: list[tuple[str, str]] | None) -> nbformat.NotebookNode:
    """The released lesson with the solution cells filled in (and edited), or untouched when edits is None."""
    lesson = nbformat.read(notebook_path("lessons", assignment), as_version=4)
    if edits is None:
        return lesson
    solutions = {cell.id: cell for cell in nbformat.read(notebook_path("solutions", assignment), as_version=4).cells}
    for cell in lesson.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solved_source(solutions[cell.id])
            if cell.id == "basic-block":
                for old, new in edits:
                    assert old in cell.source, "the solution changed: update this test's edit"
                    cell.source = cell.source.replace(old, new)
    return lesson


def make(target: str, root: Path, **variables: str) -> str:
    """Run a Makefile target against a scratch grading folder, as the instructor would."""
    env = {**os.environ, "GRADING_ROOT": str(root)}
    args = ["make", "--no-print-directory", target, f"VENV={BIN.parent}", *(f"{k}={v}" for k, v in variables.items())]
    done = subprocess.run(args, cwd=REPOSITORY, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """Grade the whole class once, then let each test read the results."""
    root = tmp_path_factory.mktemp("course")
    for student, assignments in SUBMISSIONS.items():
        for assignment, edits in assignments.items():
            folder = root / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(make_submission(assignment, edits), folder / f"{assignment}.ipynb")
    for assignment in (L01, L04):
        make("autograde", root, A=assignment)
        make("feedback", root, A=assignment)
    make("grades", root)
    return root


def failed_cells(root: Path, student: str, assignment: str) -> set[str]:
    """grade ids of the test cells that did not earn full points."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, student)
        return {grade.name for grade in submission.grades if grade.score < grade.max_score}


def test_grades_csv_has_exactly_the_expected_scores(graded):
    with open(graded / "grades.csv") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["score"]) for row in csv.DictReader(handle)}
    expected = {
        ("alice", L01): FULL[L01], ("alice", L04): FULL[L04],
        ("bob", L01): 0, ("bob", L04): 0,
        ("carol", L01): 0, ("carol", L04): FULL[L04] - 2,
        ("dave", L01): 0, ("dave", L04): FULL[L04] - 3,
    }
    assert rows == expected


@pytest.mark.parametrize(("student", "assignment"), sorted(EXPECTED_FAILED_CELLS))
def test_each_mistake_loses_exactly_the_points_of_its_property(graded, student, assignment):
    assert failed_cells(graded, student, assignment) == EXPECTED_FAILED_CELLS[student, assignment]


def test_untouched_lesson_fails_every_graded_cell(graded):
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gradebook:
        for assignment in (L01, L04):
            submission = gradebook.find_submission_notebook(assignment, assignment, "bob")
            assert submission.grades and all(grade.score == 0 for grade in submission.grades)


def test_feedback_is_written_for_every_submission(graded):
    for student, assignments in SUBMISSIONS.items():
        for assignment in assignments:
            page = graded / "feedback" / student / assignment / f"{assignment}.html"
            assert page.exists(), page
    carol = (graded / "feedback" / "carol" / L04 / f"{L04}.html").read_text()
    assert "no ReLU runs after the addition" in carol
