"""A whole class of broken and hostile submissions, graded in one parallel batch through `make autograde`.

Every submission must end as the row tests/hostile.py expects (score and status, with a reason), nothing may stop
the batch, and grading again must change no one's grade.
"""

import csv
import html
import re
import shutil
import site
import subprocess
from pathlib import Path

import nbformat
import pytest
from hostile import ASSIGNMENT, CORPUS, PTH_FILE, REVIEW, WALL_SECONDS
from nbgrader.api import Gradebook
from notebooks import REPOSITORY, notebook_path
from test_autograde import make
from test_grading_units import sandboxed_processes

pytestmark = pytest.mark.skipif(not Path("/proc/self/ns/net").exists(), reason="needs Linux")


def report_rows(root: Path) -> dict[str, dict[str, str]]:
    """report.csv, by student."""
    with (root / "report.csv").open() as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == ASSIGNMENT}


CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def shared_memory_keys() -> str:
    """The System V shared-memory segments of the host, as ipcs lists them."""
    return subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Grade the corpus once, two at a time, with copies of the course's solutions lying elsewhere on the machine."""
    root = tmp_path_factory.mktemp("hostile")
    for student, submission in CORPUS.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text(submission.build())
    copies = [tmp_path_factory.mktemp("another-course"), REPOSITORY.parent / f".{REPOSITORY.name}-second-copy"]
    for copy in copies:
        target = copy / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook_path("solutions", ASSIGNMENT), target)
    before = {"core_pattern": CORE_PATTERN.read_text(), "shm": shared_memory_keys()}
    try:
        printed = make("autograde", root, A=ASSIGNMENT, J="2", WALL=str(WALL_SECONDS), MEMORY_GB="4")
    finally:
        shutil.rmtree(copies[1], ignore_errors=True)
    root.joinpath("summary.txt").write_text(printed)
    root.joinpath("host-before.txt").write_text(repr(before))
    make("feedback", root, A=ASSIGNMENT)
    make("grades", root)
    return root


@pytest.mark.parametrize("student", CORPUS)
def test_each_submission_gets_its_score_and_status_with_a_reason(batch, student):
    row, expected = report_rows(batch)[student], CORPUS[student]
    score = float(row["score"]) if row["score"] else 0.0
    assert row["status"] in expected.status.split("|"), row["reason"]
    assert score == expected.score if expected.exact else score <= expected.score, row["reason"]
    assert expected.reason in row["reason"]
    assert float(row["max_score"]) == CORPUS["solved"].score


@pytest.mark.parametrize("student", CORPUS)
def test_suspicious_constructs_are_flagged_for_review_and_honest_work_is_not(batch, student):
    review = report_rows(batch)[student]["review"]
    assert REVIEW[student] in review if student in REVIEW else review == "", review


def test_a_wrong_block_never_earns_what_a_right_one_does(batch):
    rows = report_rows(batch)
    right = {s for s in CORPUS if CORPUS[s].score == CORPUS["solved"].score}
    assert all(float(rows[s]["score"] or 0) < CORPUS["solved"].score for s in CORPUS if s not in right)


def test_nothing_reached_the_host(batch):
    before = eval(batch.joinpath("host-before.txt").read_text())  # noqa: S307 (written by the fixture above)
    assert CORE_PATTERN.read_text() == before["core_pattern"]
    assert shared_memory_keys() == before["shm"]
    assert not Path("/dev/shm/residual-course-leftover").exists()
    assert not list(batch.rglob("ballast-*")) and not list(Path("/tmp").glob("ballast-*"))
    assert not (batch / ".isolation").exists() or not any((batch / ".isolation").iterdir())
    assert not sandboxed_processes()


def test_output_floods_are_cut_in_bytes(batch):
    log = batch / "logs" / ASSIGNMENT / "floods-one-line.log"
    graded = batch / "autograded" / "floods-one-line" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert log.stat().st_size < 10 * 2**20 and graded.stat().st_size < 10 * 2**20


def test_what_the_students_kernel_printed_never_reaches_the_feedback(batch):
    page = (batch / "feedback" / "prints-hidden-tests" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    # the student's own code (which the page shows) says "LEAKED:"; what its hook printed would say "LEAKED: ..."
    assert "LEAKED: " not in page and "HIDDEN TESTS" not in page and "channels=8" not in page


def test_grades_csv_agrees_with_the_report_and_has_no_silent_zero(batch):
    with (batch / "grades.csv").open() as handle:
        exported = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(exported) == set(CORPUS)
    reported = report_rows(batch)
    for student in CORPUS:
        row = exported[student]
        assert (row["status"], row["reason"]) == (reported[student]["status"], reported[student]["reason"])
        unscored = row["status"] in ("malformed", "needs manual grading", "timeout", "crashed")
        assert row["score"] == "" if unscored else float(row["score"]) == float(reported[student]["score"]), row


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
    make("autograde", batch, A=ASSIGNMENT, STUDENTS="mistaken,patches-torch,colab-round-trip", J="3",
         WALL=str(WALL_SECONDS))
    def without_times(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {student: {k: v for k, v in row.items() if k != "seconds"} for student, row in rows.items()}

    assert without_times(report_rows(batch)) == without_times(before)
    with Gradebook(f"sqlite:///{batch / 'gradebook.db'}") as gradebook:
        assert {s: gradebook.find_submission(ASSIGNMENT, s).score for s in scores_before} == scores_before


def test_what_a_student_names_lands_escaped_in_the_report_grades_and_summary(batch):
    for name in ("report.csv", "grades.csv"):
        with (batch / name).open() as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert not [cell for cell in cells if cell.lstrip(" ").startswith(("=", "+", "@", "-"))], name
        assert all(cell.isprintable() for cell in cells), name
    reason = report_rows(batch)["names-that-attack"]["reason"]
    assert "HYPERLINK" in reason and "\x1b" not in reason  # the name reached the report, its escapes did not
    assert all(line.isprintable() for line in batch.joinpath("summary.txt").read_text().splitlines())


def test_no_tag_a_student_wrote_reaches_a_feedback_page(batch):
    for student in ("markdown-with-script", "names-that-attack"):
        page = (batch / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        assert "<script>fetch" not in page and "onerror=alert(1)>" not in page and "<img src=x" not in page


HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


def test_no_hidden_test_line_reaches_any_feedback(batch):
    solution = nbformat.read(notebook_path("solutions", ASSIGNMENT), as_version=4)
    hidden = {line.strip() for cell in solution.cells for block in HIDDEN.findall(cell.source)
              for line in block.splitlines() if len(line.strip()) > 12}
    pages = list((batch / "feedback").rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [line for line in hidden if line in text]
        assert not leaked, (page.parent.parent.name, leaked[:2])
