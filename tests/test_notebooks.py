"""Every lesson fails only where exercises are still stubs.

That every solved lesson runs clean in fast mode, its claims and checks included, is tested where it costs one run
and not two: tests/test_colab_like.py runs each solved lesson (the solution without its hidden tests) in the
Colab-like environment, and tests/test_autograde.py grades each solution, hidden tests included, at full marks.
"""

import pytest
from notebooks import ASSIGNMENTS, error_of, execute, nbgrader_role, notebook_path, text_of

# What an unfinished exercise may cause: its own stub, a check saying so, and names it never defined.
EXPECTED_IN_LESSONS = {"NotImplementedError", "CheckFailed", "NameError"}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_released_lesson_fails_only_where_exercises_are_unfinished(assignment):
    notebook = execute(notebook_path("lessons", assignment), allow_errors=True)
    failed = [(cell, error_of(cell)) for cell in notebook.cells if error_of(cell)]
    assert failed, "an untouched lesson must show its exercises as unfinished"
    for cell, error in failed:
        where = f"{assignment} cell {cell.id} ({error.ename}: {error.evalue[:200]})"
        role = nbgrader_role(cell)
        assert role or "uses-exercise" in cell.metadata.get("tags", []), f"unexpected error in {where}"
        assert error.ename in EXPECTED_IN_LESSONS, where
        if error.ename == "CheckFailed":
            assert "not implemented yet" in text_of(cell), where
        if error.ename == "NameError":
            assert role != "solution", where
    graded = [cell for cell in notebook.cells if nbgrader_role(cell) == "test"]
    assert all(error_of(cell) for cell in graded), "every graded check must fail on the untouched lesson"
