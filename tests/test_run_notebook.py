"""The one notebook runner: the kernel sees the environment asked for, in the folder asked for; ours is restored."""

import os

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from notebooks import error_of, text_of

from autograder.grading.run_notebook import execute_notebook

PROBE = 'import os\nprint(os.getcwd(), os.environ.get("COURSE_PROBE"), os.environ.get("COURSE_GONE"))'


def probe_notebook(*sources: str) -> nbformat.NotebookNode:
    """A notebook of the given code cells."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])


def test_the_kernel_runs_in_the_folder_with_the_environment_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GONE", "present")
    monkeypatch.delenv("COURSE_PROBE", raising=False)
    before = dict(os.environ)
    notebook = execute_notebook(probe_notebook(PROBE), tmp_path, 60, {"COURSE_PROBE": "set"}, unset=["COURSE_GONE"])
    assert text_of(notebook.cells[0]).split() == [str(tmp_path), "set", "None"]
    assert dict(os.environ) == before


def test_a_failing_cell_raises_unless_errors_are_allowed_and_keeps_what_ran(tmp_path):
    cells = ("print('first')", "1 / 0", "print('after')")
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        execute_notebook(notebook := probe_notebook(*cells), tmp_path, 60)
    assert "first" in text_of(notebook.cells[0]) and not notebook.cells[2].outputs
    notebook = execute_notebook(probe_notebook(*cells), tmp_path, 60, allow_errors=True)
    assert error_of(notebook.cells[1]).ename == "ZeroDivisionError" and "after" in text_of(notebook.cells[2])
