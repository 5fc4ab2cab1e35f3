"""Execute a notebook top to bottom in a given environment: the one runner of the tests, `make gpu-check` and the
lesson timings (nbgrader's own runs go through `nbgrader_run`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute_notebook(notebook: nbformat.NotebookNode, folder: Path, timeout: int, env: Mapping[str, str] = {},
                     unset: Iterable[str] = (), allow_errors: bool = False, kernel_name: str = "python3",
                     interpreter_first_on_path: bool = False) -> nbformat.NotebookNode:
    """Run every cell in place, in `folder`, with `env` set and `unset` removed for the kernel; this process's
    environment is restored afterwards. `interpreter_first_on_path` puts this interpreter's folder first on PATH, so
    that the commands a notebook runs (nbgrader, pip) are this environment's.

    Raises nbclient's CellExecutionError at the first failing cell unless `allow_errors`; the cells run so far keep
    their outputs either way.
    """
    saved = dict(os.environ)
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(env)
    if interpreter_first_on_path:
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook
