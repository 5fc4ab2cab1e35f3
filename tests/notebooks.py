"""Run notebooks the way the course's users do, and read back what each cell did."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPOSITORY = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPOSITORY / "solutions").iterdir() if p.name[:2].isdigit())


def notebook_path(folder: str, assignment: str) -> Path:
    """solutions/NN_slug/NN_slug.ipynb or lessons/NN_slug/NN_slug.ipynb."""
    return REPOSITORY / folder / assignment / f"{assignment}.ipynb"


def execute(path: Path, allow_errors: bool, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute a notebook in fast mode with this interpreter's kernel, in the notebook's own folder."""
    notebook = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update({"RESIDUAL_COURSE_FAST": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return notebook


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
