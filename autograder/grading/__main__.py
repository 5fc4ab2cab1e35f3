"""`python -m autograder.grading <assignment> [--jobs N]`: grade every submission of one assignment (make autograde)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from autograder.grading import isolate
from autograder.grading.batch import REPOSITORY, Settings, db_url_for, grade_all, summary, write_report


def main() -> int:
    """Parse the options, apply the GPU policy, grade the batch, write report.csv and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("assignment", help="a folder of solutions/, e.g. 04_residual_blocks")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--wall", type=float, default=600, help="seconds allowed for a whole notebook (default 600)")
    parser.add_argument("--memory-gb", type=float, default=6, help="memory allowed per submission (default 6 GiB)")
    parser.add_argument("--require-gpu", action="store_true", help="refuse to grade unless a CUDA GPU is visible")
    parser.add_argument("--students", help="comma-separated student ids (default: every submission)")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # nbgrader, alembic
    if not (REPOSITORY / "solutions" / args.assignment).is_dir():
        known = ", ".join(sorted(p.name for p in (REPOSITORY / "solutions").glob("[0-9]*")))
        print(f"No assignment {args.assignment!r}: choose one of {known}.")
        return 2
    root = Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder").resolve()
    gpus = _gpus(args.require_gpu)
    if gpus is None:
        return 3
    isolated = isolate.namespaces_available()
    if not isolated:
        print("Warning: this machine does not allow network, mount and PID namespaces here (run as root on Linux);"
              " submissions run with time and memory limits only.")
    settings = Settings(args.assignment, root, db_url_for(root), max(1, args.jobs), args.wall, args.memory_gb, gpus,
                        isolated)
    start = time.perf_counter()
    students = [s for s in (args.students or "").split(",") if s]
    outcomes = grade_all(settings, students)
    report = write_report(settings, outcomes)
    print(summary(settings, outcomes, time.perf_counter() - start))
    print(f"report: {report}")
    return 0


def _gpus(required: bool) -> int | None:
    """How many GPUs workers can share; None (after saying why) when a GPU is required and there is none."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if required and count == 0:
        print("REQUIRE_GPU=1: torch sees no CUDA GPU here, so nothing was graded (the checks would run on the CPU).")
        return None
    if required:
        os.environ["RESIDUAL_COURSE_REQUIRE_GPU"] = "1"
    return count


if __name__ == "__main__":
    sys.exit(main())
