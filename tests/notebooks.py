"""Run notebooks the way the course's users do, and read back what each cell did."""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.grading.run_notebook import execute_notebook

REPOSITORY = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPOSITORY / "solutions").iterdir() if p.name[:2].isdigit())


def notebook_path(folder: str, assignment: str) -> Path:
    """solutions/NN_slug/NN_slug.ipynb or lessons/NN_slug/NN_slug.ipynb."""
    return REPOSITORY / folder / assignment / f"{assignment}.ipynb"


def execute(path: Path, allow_errors: bool, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute a notebook in fast mode with this interpreter's kernel, in the notebook's own folder."""
    env = {"RESIDUAL_COURSE_FAST": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    return execute_notebook(nbformat.read(path, as_version=4), path.parent, timeout, env, allow_errors=allow_errors,
                            interpreter_first_on_path=True)


def error_of(cell: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The cell's error output, if it raised."""
    return next((out for out in cell.get("outputs", []) if out.output_type == "error"), None)


def text_of(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed, errors included, as plain text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}\n" + "\n".join(out.traceback))
    return "\n".join(parts)


def nbgrader_role(cell: nbformat.NotebookNode) -> str:
    """'solution', 'test', or '' for ordinary cells."""
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    return ""
