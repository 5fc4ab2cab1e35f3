"""The gradebook on a real PostgreSQL server: `make autograde` and `make grades` with NBGRADER_DB_URL set to it.

The test starts its own throwaway server (Debian's postgresql, `make postgres` installs it) and fails, never skips,
when PostgreSQL is missing: CI installs it.
"""

import csv
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from cases.residual_blocks import CASE
from nbgrader.api import Gradebook
from test_autograde import make, make_submission

STUDENTS = {"solver": (), "untouched": None}  # student -> mistakes, as in test_autograde; None: submitted untouched
# PostgreSQL refuses to run as root: as root, its commands run as the `postgres` system user.
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def postgres_bin() -> Path:
    """The folder of the newest installed PostgreSQL's server programs (initdb, pg_ctl)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: float(path.parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make postgres` as root, "
                    "or install Debian's postgresql package", pytrace=False)
    return found[-1].parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*command: str | Path) -> None:
    """Run a PostgreSQL program as the postgres user; fail with its output if it fails."""
    done = subprocess.run([*AS_POSTGRES, *map(str, command)], capture_output=True, text=True)
    assert done.returncode == 0, f"{Path(command[0]).name} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """Start a throwaway PostgreSQL server with an empty database; its SQLAlchemy URL; stop and remove it after."""
    programs = postgres_bin()
    # Not under pytest's tmp_path: its parent is private to root, and a unix socket's path must stay short.
    folder = Path(tempfile.mkdtemp(prefix="residual-course-pg-"))
    if AS_POSTGRES:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    try:
        run(programs / "initdb", "--pgdata", folder / "data", "--username", "grader", "--auth", "trust")
        run(programs / "pg_ctl", "start", "--wait", "--pgdata", folder / "data", "--log", folder / "server.log",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1")
        try:
            run(programs / "createdb", "--host", "127.0.0.1", "--port", str(port), "--username", "grader", "gradebook")
            yield f"postgresql+psycopg://grader@127.0.0.1:{port}/gradebook"
        finally:
            run(programs / "pg_ctl", "stop", "--pgdata", folder / "data", "--mode", "immediate")
    finally:
        shutil.rmtree(folder)


@pytest.fixture(scope="module")
def graded(database_url, tmp_path_factory) -> Path:
    """Grade a solved and an untouched lesson 05 into the PostgreSQL gradebook, and export grades.csv."""
    root = tmp_path_factory.mktemp("course")
    for student, mistakes in STUDENTS.items():
        folder = root / "submitted" / student / CASE.assignment
        folder.mkdir(parents=True)
        nbformat.write(make_submission(CASE.assignment, mistakes), folder / f"{CASE.assignment}.ipynb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBGRADER_DB_URL", database_url)
        make("autograde", root, A=CASE.assignment, J="2")  # two workers writing to the server at once
        make("grades", root)
    return root


def test_grades_csv_exported_from_postgresql_has_full_marks_and_zero(graded):
    with open(graded / "grades.csv") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["score"]) for row in csv.DictReader(handle)}
    assert rows == {("solver", CASE.assignment): CASE.full_marks, ("untouched", CASE.assignment): 0.0}


def test_the_scores_live_in_the_postgresql_gradebook_and_no_sqlite_file_is_written(graded, database_url):
    with Gradebook(database_url) as gradebook:
        scores = {submission.student.id: submission.score
                  for submission in gradebook.assignment_submissions(CASE.assignment)}
        max_score = gradebook.find_assignment(CASE.assignment).max_score
    assert scores == {"solver": CASE.full_marks, "untouched": 0.0}
    assert max_score == CASE.full_marks
    assert not (graded / "gradebook.db").exists()
