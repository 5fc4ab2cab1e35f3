"""Wall time of every solution notebook, fast mode and default mode: run `python benchmarks/lesson_times.py`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # the grading package is not installed: it runs from the checkout

from autograder.grading.run_notebook import execute_notebook  # noqa: E402
from residual_course.runtime import FAST_ENV_VARS  # noqa: E402


def execute_seconds(path: Path, fast: bool, save_to: Path | None = None) -> float:
    """Execute one notebook top to bottom in a fresh kernel, kernel start included, and time it."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute_notebook(notebook, path.parent, 1800, {"RESIDUAL_COURSE_FAST": "1"} if fast else {}, unset=FAST_ENV_VARS)
    seconds = time.perf_counter() - start
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, save_to / f"{path.stem}.{'fast' if fast else 'default'}.ipynb")
    return seconds


def main() -> None:
    """Print one line per lesson and mode; the figures are the report, nothing is asserted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modes", nargs="+", choices=("fast", "default"), default=["fast", "default"])
    parser.add_argument("--save", type=Path, help="also write each executed notebook, outputs included, here")
    parser.add_argument("lessons", nargs="*", help="lesson folders, e.g. 01_vanishing_gradients (default: all)")
    args = parser.parse_args()
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"solution notebooks on {device}")
    paths = sorted((REPOSITORY / "solutions").glob("[0-9]*/*.ipynb"))
    for path in paths:
        if args.lessons and path.parent.name not in args.lessons:
            continue
        for mode in args.modes:
            seconds = execute_seconds(path, mode == "fast", args.save)
            print(f"{path.parent.name:<28} {mode:<8} {seconds:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
