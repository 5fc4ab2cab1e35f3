"""Every solution notebook runs clean in fast mode; every lesson fails only where exercises are still stubs."""

import time

import pytest
from notebooks import ASSIGNMENTS, error_of, execute, nbgrader_role, notebook_path, text_of

# What an unfinished exercise may cause: its own stub, a check saying so, and names it never defined.
EXPECTED_IN_LESSONS = {"NotImplementedError", "CheckFailed", "NameError"}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_runs_clean_in_fast_mode(assignment):
    start = time.perf_counter()
    notebook = execute(notebook_path("solutions", assignment), allow_errors=False)
    seconds = time.perf_counter() - start
    print(f"{assignment}: solution executed in {seconds:.1f} s (fast mode)")
    checks = [text_of(cell) for cell in notebook.cells if nbgrader_role(cell) == "test"]
    assert checks, "a lesson without graded checks"
    assert all("FAIL" not in text for text in checks)


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
