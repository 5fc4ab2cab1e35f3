"""A whole class of broken and hostile submissions, graded in one parallel batch through `make autograde`.

Every submission must end as the row tests/hostile.py expects (score and status, with a reason), nothing may stop
the batch, and grading again must change no one's grade.
"""

import csv
import html
import re
import site
from pathlib import Path

import pytest
from hostile import ASSIGNMENT, CORPUS, PTH_FILE, WALL_SECONDS
from nbgrader.api import Gradebook
from test_autograde import make

pytestmark = pytest.mark.skipif(not Path("/proc/self/ns/net").exists(), reason="needs Linux")


def report_rows(root: Path) -> dict[str, dict[str, str]]:
    """report.csv, by student."""
    with (root / "report.csv").open() as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == ASSIGNMENT}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Grade the corpus once, two at a time, then export grades and feedback."""
    root = tmp_path_factory.mktemp("hostile")
    for student, submission in CORPUS.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text(submission.build())
    make("autograde", root, A=ASSIGNMENT, J="2", WALL=str(WALL_SECONDS), MEMORY_GB="4")
    make("feedback", root, A=ASSIGNMENT)
    make("grades", root)
    return root


@pytest.mark.parametrize("student", CORPUS)
def test_each_submission_gets_its_score_and_status_with_a_reason(batch, student):
    row, expected = report_rows(batch)[student], CORPUS[student]
    assert (float(row["score"]), row["status"]) == (expected.score, expected.status), row["reason"]
    assert expected.reason in row["reason"]
    assert float(row["max_score"]) == CORPUS["solved"].score


def test_grades_csv_agrees_with_the_report_and_has_no_silent_zero(batch):
    with (batch / "grades.csv").open() as handle:
        exported = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(exported) == set(CORPUS)
    for student, expected in CORPUS.items():
        row = exported[student]
        assert row["status"] == expected.status and expected.reason in row["reason"]
        unscored = expected.status in ("malformed", "needs manual grading", "timeout", "crashed")
        assert row["score"] == "" if unscored else float(row["score"]) == expected.score, row


def test_no_submission_could_write_outside_its_own_folder(batch):
    assert not [folder for folder in site.getsitepackages() if (Path(folder) / PTH_FILE).exists()]


def test_the_originals_of_repaired_submissions_are_kept(batch):
    original = batch / "originals" / "colab-round-trip" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert original.exists() and '"nbgrader"' not in original.read_text()
    assert (batch / "submitted" / "malformed-json" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text() == \
        CORPUS["malformed-json"].build()


def test_feedback_names_the_failed_hidden_test_without_its_code(batch):
    page = (batch / "feedback" / "mistaken" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))  # what the student reads, without syntax-colouring tags
    assert "no ReLU runs after the addition" in text
    assert "hidden tests ran here" in text
    assert "HIDDEN TESTS" not in text and "channels=8" not in text


def test_grading_again_gives_the_same_scores_and_touches_no_one_else(batch):
    before = report_rows(batch)
    with Gradebook(f"sqlite:///{batch / 'gradebook.db'}") as gradebook:
        scores_before = {s: gradebook.find_submission(ASSIGNMENT, s).score for s in ("solved", "untouched")}
    make("autograde", batch, A=ASSIGNMENT, STUDENTS="mistaken,patches-torch", WALL=str(WALL_SECONDS))
    def without_times(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {student: {k: v for k, v in row.items() if k != "seconds"} for student, row in rows.items()}

    assert without_times(report_rows(batch)) == without_times(before)
    with Gradebook(f"sqlite:///{batch / 'gradebook.db'}") as gradebook:
        assert {s: gradebook.find_submission(ASSIGNMENT, s).score for s in scores_before} == scores_before
