"""One call that proves the GPU path: every check on the GPU, a class graded there, and the trainer's GPU figures.

    make device-proof             # here: the same steps at a small size, on the CPU, saying what needs a GPU
    bash benchmarks/device_proof.sh   # on a machine with a CUDA GPU (see that script for the device tool's call)

1. checks: every solution notebook, visible checks and hidden tests, with a GPU required; each check's device.
2. a class: the lesson cases' submissions (solved, typical mistakes) and lesson 05's hostile corpus,
   graded with the GPU required at J=8, then the first few again at J=1; seconds per submission, the speed-up, and
   every score against the score the CPU gives it (the one tests/ asserts in CI).
3. the trainer: `make bench` part 4 (images/s of fit() and of a textbook loop, seconds to 93% test accuracy).
Without a GPU every part runs on the CPU at a small size (--tiny implied), so this script is tested in CI.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPOSITORY / "tests"), str(REPOSITORY / "benchmarks"), str(REPOSITORY)]

from cases import all_cases, students  # noqa: E402
from hostile import ASSIGNMENT as HOSTILE_ASSIGNMENT  # noqa: E402
from hostile import CORPUS  # noqa: E402
from test_autograde import make_submission  # noqa: E402

from autograder.grading import gpu_check  # noqa: E402

GPU_JOBS, CPU_JOBS = 8, 2
SERIAL_SUBMISSIONS = 8  # graded again one at a time, for the speed-up (1 in the small version)
TINY_LESSONS = ("05_residual_blocks",)
TINY_CLASS = ("solver", "l05-mistakes-1")


def points(assignment: str) -> dict[str, float]:
    """grade id -> points of each test cell, read from the solution notebook."""
    notebook = nbformat.read(REPOSITORY / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"] for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade")}


def the_class(tiny: bool) -> dict[str, list[tuple[str, str, str]]]:
    """assignment -> [(student, notebook text, the outcome the CPU gives: 'score|status' pattern)]."""
    classes: dict[str, list[tuple[str, str, str]]] = {}
    for case in all_cases():
        if tiny and case.assignment not in TINY_LESSONS:
            continue
        worth = points(case.assignment)
        for student, submission in students(case).items():
            if tiny and student not in TINY_CLASS:
                continue
            score = case.full_marks - sum(worth[cell] for cell in submission.failing)
            text = nbformat.writes(make_submission(case.assignment, submission.edits))
            classes.setdefault(case.assignment, []).append((student, text, f"{score:g}|graded"))
    if not tiny:
        hostile = classes.setdefault(HOSTILE_ASSIGNMENT, [])
        for student, submission in CORPUS.items():
            if submission.exact:
                expected = f"{submission.score:g}|{submission.status}"
            else:
                expected = f"<={submission.score:g}|{submission.status}"
            hostile.append((f"hostile-{student}", submission.build(), expected))
    return classes


def matches(row: dict[str, str], expected: str) -> bool:
    """Does a report row give the CPU's outcome ('18|graded', '<=16|graded|tampered', '0|manual')?"""
    score, statuses = expected.split("|", 1)
    if row["status"] not in statuses.split("|"):
        return False
    if not row["score"]:
        return True  # a status without a score (manual, timed out...): the status decides
    if score.startswith("<="):
        return float(row["score"]) <= float(score[2:])
    return float(row["score"]) == float(score)


def grade(root: Path, assignment: str, jobs: int, require_gpu: bool, only: list[str] | None = None) -> float:
    """`python -m autograder.grading` as `make autograde` runs it; returns the batch's wall seconds."""
    command = [sys.executable, "-m", "autograder.grading", assignment, "--jobs", str(jobs)]
    command += ["--require-gpu"] * require_gpu + (["--students", ",".join(only)] if only else [])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPOSITORY, env={**os.environ, "GRADING_ROOT": str(root)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"grading {assignment} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def part_checks(lessons: tuple[str, ...] | None, gpu: bool) -> bool:
    """Part 1: every solution notebook's checks and hidden tests, each printed with the device it ran on."""
    print(f"## 1. checks and hidden tests, {'GPU required' if gpu else 'on the CPU (no GPU here)'}", flush=True)
    os.environ.update({"RESIDUAL_COURSE_FAST": "1", "MPLBACKEND": "Agg"})  # the later parts run in fast mode too
    env = gpu_check.GPU_CHECK_ENV if gpu else {}
    all_ok = True
    for path in sorted((REPOSITORY / "solutions").glob("[0-9]*/*.ipynb")):
        if lessons and path.parent.name not in lessons:
            continue
        start = time.perf_counter()
        ok, lines = gpu_check.run(path, env)
        all_ok &= ok
        print(f"{path.parent.name}: {'all cells passed' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s")
        print("\n".join(lines), flush=True)
    return all_ok


def part_class(tiny: bool, gpu: bool) -> bool:
    """Part 2: the class graded at J (GPU required where there is one), a few again at J=1, scores compared."""
    jobs = GPU_JOBS if gpu else CPU_JOBS
    classes = the_class(tiny)
    total = sum(len(roster) for roster in classes.values())
    print(f"## 2. {total} submissions graded at J={jobs}{', GPU required' if gpu else ' on the CPU (no GPU here)'}",
          flush=True)
    all_ok, seconds = True, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for assignment, roster in classes.items():
            for student, text, _ in roster:
                folder = root / "submitted" / student / assignment
                folder.mkdir(parents=True)
                (folder / f"{assignment}.ipynb").write_text(text)
            batch = grade(root, assignment, jobs, gpu)
            seconds += batch
            with (root / "report.csv").open() as handle:
                rows = {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == assignment}
            differ = [f"{student}: {rows[student]['score'] or '-'} {rows[student]['status']}, CPU: {expected}"
                      for student, _, expected in roster if not matches(rows[student], expected)]
            all_ok &= not differ
            print(f"{assignment}: {len(roster)} in {batch:.0f} s; "
                  + ("every score equals its CPU score" if not differ else "DIFFERENT: " + "; ".join(differ)),
                  flush=True)
        per_submission = seconds / total
        first, roster = next(iter(classes.items()))
        serial = [student for student, _, _ in roster[:1 if tiny else SERIAL_SUBMISSIONS]]
        serial_seconds = grade(root, first, 1, gpu, serial) / len(serial)
    print(f"seconds per submission: {per_submission:.1f} at J={jobs}, {serial_seconds:.1f} at J=1 "
          f"({len(serial)} of {first}); speed-up {serial_seconds / per_submission:.2f}x", flush=True)
    return all_ok


def part_bench(tiny: bool, output: Path) -> None:
    """Part 3: `make bench` part 4, on the GPU (or, without one, its seconds-long version on the CPU)."""
    import bench

    print("## 3. the trainer on the GPU (make bench part 4)" if not tiny else
          "## 3. the trainer, make bench part 4 at its tiny size", flush=True)
    bench.main(["--parts", "4", "--output", str(output)] + ["--tiny"] * tiny)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="lesson 05 only, two submissions (implied without GPU)")
    parser.add_argument("--output", type=Path, default=Path(os.environ.get("OUT", tempfile.gettempdir()))
                        / "results-device-proof.md", help="where part 3 writes its table")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    tiny = args.tiny or not gpu
    if gpu:
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {os.cpu_count()} cores")
    else:
        print("No CUDA GPU here: every part runs on the CPU at a small size. The GPU figures (checks on cuda, J=8 "
              "with the GPU required, bench part 4 on the GPU) need a machine with one: run benchmarks/"
              "device_proof.sh there.")
    start = time.perf_counter()
    checks_ok = part_checks(TINY_LESSONS if tiny else None, gpu)
    class_ok = part_class(tiny, gpu)
    part_bench(tiny, args.output)
    print(f"device proof: checks {'passed' if checks_ok else 'FAILED'}, class "
          f"{'scores equal the CPU scores' if class_ok else 'scores DIFFER'}, {time.perf_counter() - start:.0f} s")
    return 0 if checks_ok and class_ok else 1


if __name__ == "__main__":
    sys.exit(main())
