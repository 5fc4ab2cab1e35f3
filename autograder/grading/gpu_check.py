"""Run every solution notebook, visible checks and hidden tests included, on the GPU and say what ran where."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nbformat
import torch
from nbclient.exceptions import CellExecutionError

from autograder.grading.limits import WALL_SECONDS
from autograder.grading.run_notebook import execute_notebook

REPOSITORY = Path(__file__).resolve().parents[2]
CHECK_LINE = re.compile(r"^Checking (.+) on (.+)$", re.MULTILINE)
GPU_CHECK_ENV = {"RESIDUAL_COURSE_REQUIRE_GPU": "1", "RESIDUAL_COURSE_FAST": "1", "MPLBACKEND": "Agg"}


def run(path: Path, env: Mapping[str, str] = {}) -> tuple[bool, list[str]]:
    """Execute one notebook with `env` added (GPU_CHECK_ENV: a GPU required); return success and the report lines."""
    notebook = nbformat.read(path, as_version=4)
    ok = True
    try:
        # no cell may take longer than a whole notebook may under grading
        execute_notebook(notebook, path.parent, int(WALL_SECONDS), env, interpreter_first_on_path=True)
    except CellExecutionError as error:
        ok = False
        reason = str(error).strip().splitlines()[-1]
    lines = []
    for cell in notebook.cells:
        printed = "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")
        grade = cell.metadata.get("nbgrader", {})
        for subject, device in CHECK_LINE.findall(printed):
            lines.append(f"    {grade.get('grade_id', cell.id):<28} {subject:<18} ran on {device}")
    if not ok:
        lines.append(f"    FAILED: {reason}")
    return ok, lines


def main() -> int:
    """Refuse without a GPU; otherwise grade every solution there and print a device report."""
    if not torch.cuda.is_available():
        print("make gpu-check needs a CUDA GPU, and torch sees none here (torch.cuda.is_available() is False).")
        return 1
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    all_ok = True
    for path in sorted((REPOSITORY / "solutions").glob("[0-9]*/*.ipynb")):
        start = time.perf_counter()
        ok, lines = run(path, GPU_CHECK_ENV)
        all_ok &= ok
        print(f"{path.parent.name}: {'all cells passed' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s")
        print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
