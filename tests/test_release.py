"""lessons/ is exactly what nbgrader generates from solutions/: nobody edits it by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from notebooks import ASSIGNMENTS, REPOSITORY, notebook_path

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """Run `nbgrader generate_assignment` for every lesson into a scratch release folder and gradebook."""
    root = tmp_path_factory.mktemp("grading")
    env = {**os.environ, "GRADING_ROOT": str(root), "RELEASE_DIR": str(root / "release"),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for assignment in ASSIGNMENTS:
        subprocess.run([BIN / "nbgrader", "generate_assignment", assignment, "--force"], cwd=REPOSITORY / "autograder",
                       env=env, check=True, capture_output=True)
    return root / "release"


def test_every_solution_has_a_lesson():
    lessons = sorted(p.name for p in (REPOSITORY / "lessons").iterdir() if p.is_dir())
    assert lessons == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_lesson_matches_what_nbgrader_generates(regenerated, assignment):
    committed = json.loads(notebook_path("lessons", assignment).read_text())
    generated = json.loads((regenerated / assignment / f"{assignment}.ipynb").read_text())
    assert committed == generated, f"lessons/{assignment} drifted from solutions/: run `make release`"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_lessons_hide_solutions_and_hidden_tests(assignment):
    text = notebook_path("lessons", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("folder", ["solutions", "lessons"])
def test_notebooks_are_committed_without_outputs(folder):
    for assignment in ASSIGNMENTS:
        notebook = json.loads(notebook_path(folder, assignment).read_text())
        for cell in notebook["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), f"{folder}/{assignment} has outputs"
