"""`python -m autograder.grading <assignment>... [--jobs N]`: grade every submission of the assignments.

`all` names every assignment. Several assignments share one pool of workers, so none idles between them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from autograder.grading import isolate
from autograder.grading.batch import grade_all, submitted_students
from autograder.grading.limits import MEMORY_GB, WALL_SECONDS
from autograder.grading.report import summary, write_report
from autograder.grading.settings import REPOSITORY, Settings, db_url_for


def main() -> int:
    """Check what the instructor asked for, apply the GPU policy, grade, write report.csv and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("assignments", nargs="+", help="folders of solutions/, e.g. 04_residual_blocks, or all")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--wall", type=float, default=WALL_SECONDS, help="seconds for a whole notebook")
    parser.add_argument("--memory-gb", type=float, default=MEMORY_GB, help="memory per submission (GiB)")
    parser.add_argument("--require-gpu", action="store_true", help="refuse to grade unless a CUDA GPU is visible")
    parser.add_argument("--students", help="comma-separated student ids (default: every submission)")
    args = parser.parse_args()
    known = sorted(p.name for p in (REPOSITORY / "solutions").glob("[0-9]*"))
    assignments = known if args.assignments == ["all"] else list(dict.fromkeys(args.assignments))
    unknown = [a for a in assignments if a not in known]
    if unknown:
        print(f"No assignment {', '.join(map(repr, unknown))}: choose among {', '.join(known)}, or all.")
        return 2
    root = Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder").resolve()
    if not root.is_dir():
        print(f"GRADING_ROOT={root} does not exist: create it (with submissions under submitted/) or unset it.")
        return 2
    gpus = _gpus(args.require_gpu)
    if gpus is None:
        return 3
    isolated = isolate.namespaces_available()
    if not isolated:
        print("Warning: this machine does not allow namespaces here (run as root on Linux); submissions run with "
              "time and memory limits only, without the sandbox.")
    batches = []
    wanted = [s for s in (args.students or "").split(",") if s]
    for assignment in assignments:
        settings = Settings(assignment, root, db_url_for(root), max(1, args.jobs), args.wall, args.memory_gb, gpus,
                            isolated)
        everyone = submitted_students(settings)
        students = [s for s in wanted if s in everyone] if wanted else everyone
        if students:
            batches.append((settings, students))
    everyone = {student for settings, students in batches for student in students}
    missing = sorted(set(wanted) - everyone)
    if missing:
        print(f"No submission of {', '.join(assignments)} for {', '.join(missing)} under {root / 'submitted'}.")
        return 2
    if not batches:
        names = assignments[0] if len(assignments) == 1 else "<assignment>"
        print(f"Nothing to grade: {root / 'submitted'} holds no submission of {', '.join(assignments)}; run make "
              f"collect A={names} ZIP=<download> first (or copy notebooks to submitted/<student>/{names}/).")
        return 2
    start = time.perf_counter()
    graded = grade_all(batches)
    seconds = time.perf_counter() - start
    for (settings, _), outcomes in zip(batches, graded, strict=True):
        report = write_report(root, settings.assignment, outcomes)
        print(summary(settings.assignment, settings.jobs, outcomes, seconds))
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
