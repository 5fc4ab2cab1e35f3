"""Run every solution notebook, visible checks and hidden tests included, on the GPU and say what ran where."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPOSITORY = Path(__file__).resolve().parents[2]
CHECK_LINE = re.compile(r"^Checking (.+) on (.+)$", re.MULTILINE)


def run(path: Path) -> tuple[bool, list[str]]:
    """Execute one notebook with a GPU required; return success and the report lines."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    ok = True
    try:
        client.execute()
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
    os.environ.update({"RESIDUAL_COURSE_REQUIRE_GPU": "1", "RESIDUAL_COURSE_FAST": "1", "MPLBACKEND": "Agg"})
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    all_ok = True
    for path in sorted((REPOSITORY / "solutions").glob("[0-9]*/*.ipynb")):
        start = time.perf_counter()
        ok, lines = run(path)
        all_ok &= ok
        print(f"{path.parent.name}: {'all cells passed' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s")
        print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
