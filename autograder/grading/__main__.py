"""`python -m autograder.grading <assignment>... [--jobs N]`: grade every submission of the assignments.

`all` names every assignment. Several assignments share one pool of workers, so none idles between them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from autograder.grading.batch import grade_all, submitted_students
from autograder.grading.jail import isolate
from autograder.grading.limits import MEMORY_GB, WALL_SECONDS
from autograder.grading.report import summary, write_report
from autograder.grading.settings import REPOSITORY, Settings, db_url_for


class Refused(Exception):
    """The instructor asked for something that cannot be graded: the sentence to print, and the exit code."""

    def __init__(self, sentence: str, code: int = 2) -> None:
        super().__init__(sentence)
        self.code = code


def main() -> int:
    """Check what the instructor asked for, apply the GPU policy, grade, write report.csv and print the summary."""
    args = _arguments()
    try:
        assignments = _assignments(args.assignments)
        root = _grading_root()
        gpus = _gpus(args.require_gpu)
        isolated = isolate.namespaces_available()
        if not isolated:
            print("Warning: this machine does not allow namespaces here (run as root on Linux); submissions run "
                  "with time and memory limits only, without the sandbox.")
        settings = [Settings(assignment, root, db_url_for(root), max(1, args.jobs), args.wall, args.memory_gb, gpus,
                             isolated) for assignment in assignments]
        batches = _batches(settings, [s for s in (args.students or "").split(",") if s])
    except Refused as refusal:
        print(refusal)
        return refusal.code
    start = time.perf_counter()
    graded = grade_all(batches)
    seconds = time.perf_counter() - start
    for (settings, _), outcomes in zip(batches, graded, strict=True):
        report = write_report(root, settings.assignment, outcomes)
        print(summary(settings.assignment, settings.jobs, outcomes, seconds))
    print(f"report: {report}")
    return 0


def _arguments() -> argparse.Namespace:
    """The command line: the assignments, and how to grade them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("assignments", nargs="+", help="folders of solutions/, e.g. 05_residual_blocks, or all")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--wall", type=float, default=WALL_SECONDS, help="seconds for a whole notebook")
    parser.add_argument("--memory-gb", type=float, default=MEMORY_GB, help="memory per submission (GiB)")
    parser.add_argument("--require-gpu", action="store_true", help="refuse to grade unless a CUDA GPU is visible")
    parser.add_argument("--students", help="comma-separated student ids (default: every submission)")
    return parser.parse_args()


def _assignments(asked: list[str]) -> list[str]:
    """The assignments asked for, `all` expanded, each once; refused when one is not a folder of solutions/."""
    known = sorted(p.name for p in (REPOSITORY / "solutions").glob("[0-9]*"))
    assignments = known if asked == ["all"] else list(dict.fromkeys(asked))
    unknown = [a for a in assignments if a not in known]
    if unknown:
        raise Refused(f"No assignment {', '.join(map(repr, unknown))}: choose among {', '.join(known)}, or all.")
    return assignments


def _grading_root() -> Path:
    """GRADING_ROOT, or the repository's autograder/ folder; refused when it does not exist."""
    root = Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder").resolve()
    if not root.is_dir():
        raise Refused(f"GRADING_ROOT={root} does not exist: create it (with submissions under submitted/) or unset "
                      "it.")
    return root


def _batches(everything: list[Settings], wanted: list[str]) -> list[tuple[Settings, list[str]]]:
    """Each assignment with the students to grade (the wanted ones, or all who submitted); refused when none."""
    batches = []
    for settings in everything:
        everyone = submitted_students(settings)
        students = [s for s in wanted if s in everyone] if wanted else everyone
        if students:
            batches.append((settings, students))
    assignments = [settings.assignment for settings in everything]
    submitted = everything[0].root / "submitted"
    missing = sorted(set(wanted) - {student for _, students in batches for student in students})
    if missing:
        raise Refused(f"No submission of {', '.join(assignments)} for {', '.join(missing)} under {submitted}.")
    if not batches:
        names = assignments[0] if len(assignments) == 1 else "<assignment>"
        raise Refused(f"Nothing to grade: {submitted} holds no submission of {', '.join(assignments)}; run make "
                      f"collect A={names} ZIP=<download> first (or copy notebooks to submitted/<student>/{names}/).")
    return batches


def _gpus(required: bool) -> int:
    """How many GPUs workers can share; refused (exit code 3) when a GPU is required and there is none."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if required and count == 0:
        raise Refused("REQUIRE_GPU=1: torch sees no CUDA GPU here, so nothing was graded (the checks would run on "
                      "the CPU).", code=3)
    if required:
        os.environ["RESIDUAL_COURSE_REQUIRE_GPU"] = "1"
    return count


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
