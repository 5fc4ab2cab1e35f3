"""Grade every submission of one assignment: preflight, isolated nbgrader runs in parallel, a re-check, a report.

Each submission is graded by its own `nbgrader autograde --student` process whose kernel runs isolated
(isolate.py), under a wall-clock limit for the whole notebook and a memory limit for the whole process tree. A
fresh isolated process then re-checks it (recheck.py), and the lower verdict of the two goes into the gradebook.
Nothing a submission does can stop the batch or change another student's grade; every submission ends as one
row of the report: score, status and a one-line reason.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder.grading import isolate
from autograder.grading.preflight import MALFORMED, MANUAL, preflight

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPOSITORY / "autograder"
GRADED, TIMEOUT, OUT_OF_MEMORY, CRASHED, TAMPERED = "graded", "timeout", "out of memory", "crashed", "tampered"
REPORT_FIELDS = ("student_id", "assignment", "score", "max_score", "status", "reason", "seconds")
MEMORY_ERROR = re.compile(r"MemoryError|can't allocate memory|CUDA out of memory|OutOfMemoryError")
KERNEL = "residual-course-isolated"


@dataclass
class Settings:
    """How one batch runs."""

    assignment: str
    root: Path
    db_url: str
    jobs: int = 1
    wall_seconds: float = 600.0
    memory_gb: float = 6.0
    gpus: int = 0
    isolated: bool = True


@dataclass
class Outcome:
    """One row of the report."""

    student: str
    status: str
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0


def db_url_for(root: Path) -> str:
    """The gradebook URL, as nbgrader_config.py computes it; sqlite gets a generous lock timeout for parallel work."""
    url = os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{root / 'gradebook.db'}"
    if url.startswith("sqlite:") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + "timeout=120"
    return url


def _nbgrader(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start nbgrader from the config folder, as the Makefile does."""
    command = [str(Path(sys.executable).parent / "nbgrader"), *args]
    return subprocess.Popen(command, cwd=CONFIG_DIR, env=env or dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def hidden_paths(root: Path, db_url: str) -> list[Path]:
    """What a submission must never read: answers, tests, the gradebook, everyone's work, the git history."""
    paths = [REPOSITORY / "solutions", REPOSITORY / "tests", REPOSITORY / ".git", root / "submitted",
             root / "autograded", root / "feedback", root / "release", root / "originals", root / ".isolation",
             root / "logs", root / "gradebook.db", root / "grades.csv", root / "report.csv"]
    if db_url.startswith("sqlite:///"):
        paths.append(Path(db_url.removeprefix("sqlite:///").split("?")[0]))
    return [path for path in dict.fromkeys(paths) if path.exists()]


def _process_tree(root: int) -> list[int]:
    """The process and all its descendants (kernels start in a session of their own, so sessions do not do)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def _rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes together."""
    total = 0
    for pid in pids:
        try:
            total += int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def supervise(process: subprocess.Popen, wall_seconds: float, memory_gb: float) -> tuple[str, str, str]:
    """Wait for a process; kill it and all its descendants at the time or memory limit."""
    start, limit = time.monotonic(), memory_gb * isolate.GIB * 1.5 if memory_gb > 0 else float("inf")
    output: list[str] = []
    reader = _drain(process, output)
    while process.poll() is None:
        if time.monotonic() - start > wall_seconds:
            _kill_tree(process)
            return TIMEOUT, f"stopped after {wall_seconds:.0f} s, the limit for a whole notebook (an endless loop?)", ""
        if _rss_bytes(_process_tree(process.pid)) > limit:
            _kill_tree(process)
            return OUT_OF_MEMORY, f"stopped when its processes used more than {limit / isolate.GIB:.1f} GiB", ""
        time.sleep(0.2)
    reader.join()
    log = "".join(output)
    if process.returncode != 0:
        return CRASHED, _crash_reason(log), log
    return GRADED, "", log


def _drain(process: subprocess.Popen, into: list[str], head_chars: int = 1_000_000, tail_lines: int = 100) -> object:
    """Read the process's output on a thread, so a chatty process never blocks on a full pipe.

    A flood keeps its first megabyte and its last lines (where the re-check's verdict is), and nothing between.
    """
    import threading

    def read() -> None:
        kept, tail = 0, collections.deque(maxlen=tail_lines)
        for line in process.stdout:
            if kept < head_chars:
                into.append(line)
                kept += len(line)
            else:
                tail.append(line)
        if tail:
            into.append("[... output cut ...]\n")
            into.extend(tail)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started: nothing survives, even what ignores SIGINT."""
    for pid in reversed(_process_tree(process.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _crash_reason(log: str) -> str:
    """One sentence from nbgrader's log about why the run ended early."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash or a memory limit): nothing graded"
    errors = [line.strip() for line in log.splitlines() if "[ERROR]" in line or "Error" in line]
    return f"nbgrader stopped: {errors[-1][:200] if errors else 'no message'}"


def _write_kernel_spec(settings: Settings, student: str, runtime: Path) -> Path:
    """A kernel spec whose kernel starts inside isolate.py, seeing only its own runtime folder; returns JUPYTER_PATH."""
    share = settings.root / ".isolation" / student / "share"
    spec = share / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    argv = isolate.isolated_command(kernel, hidden_paths(settings.root, settings.db_url), [runtime],
                                    settings.memory_gb)
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "isolated", "language": "python"}))
    return share


def worker_environment(settings: Settings, worker: int) -> dict[str, str]:
    """The grader's environment: each parallel worker gets its share of the CPU cores and, with GPUs, one GPU."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # J workers with a thread per core each would fight over the cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.jobs))
    if settings.gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(worker % settings.gpus)
    return env


def grade_one(settings: Settings, student: str, worker: int) -> Outcome:
    """Run nbgrader for one student, isolated and supervised, and say how it ended."""
    scratch = settings.root / ".isolation" / student
    shutil.rmtree(scratch, ignore_errors=True)
    runtime = scratch / "runtime"
    runtime.mkdir(parents=True)
    env = {**worker_environment(settings, worker), "JUPYTER_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime),
           "NBGRADER_DB_URL": settings.db_url, "GRADING_ROOT": str(settings.root),
           "RELEASE_DIR": str(settings.root / "release")}
    args = ["autograde", settings.assignment, "--student", student, "--create", "--force"]
    if settings.isolated:
        env["JUPYTER_PATH"] = str(_write_kernel_spec(settings, student, runtime))
        # IPC sockets in the one folder the kernel still sees: the only channel between it and nbgrader
        args += [f"--Execute.kernel_name={KERNEL}", "--KernelManager.transport=ipc",
                 f"--KernelManager.ip={runtime / 'kernel'}"]
    process = _nbgrader(*args, env=env, start_new_session=True)
    status, reason, log = supervise(process, settings.wall_seconds, settings.memory_gb)
    shutil.rmtree(scratch, ignore_errors=True)
    log_file = settings.root / "logs" / settings.assignment / f"{student}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(log or reason)
    if status != GRADED:
        shutil.rmtree(settings.root / "autograded" / student / settings.assignment, ignore_errors=True)
        _forget_submission(settings, student)
        return Outcome(student, status, reason)
    notebook = settings.root / "autograded" / student / settings.assignment / f"{settings.assignment}.ipynb"
    if notebook.exists() and MEMORY_ERROR.search(notebook.read_text(errors="replace")):
        return Outcome(student, OUT_OF_MEMORY, f"a cell ran out of memory (limit {settings.memory_gb:g} GiB); "
                                               "the other cells were graded")
    return Outcome(student, GRADED)


def _forget_submission(settings: Settings, student: str) -> None:
    """Drop a half-graded submission from the gradebook, so no stale score survives a timeout or a crash."""
    with Gradebook(settings.db_url) as gradebook:
        try:
            gradebook.remove_submission(settings.assignment, student)
        except MissingEntry:
            pass


def recheck_job(settings: Settings, submission: nbformat.NotebookNode) -> dict:
    """Released ordinary cells, the student's answer cells, the instructor's test cells (hidden tests included)."""
    source = nbformat.read(REPOSITORY / "solutions" / settings.assignment / f"{settings.assignment}.ipynb", 4)
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in submission.cells
               if cell.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answer = answers.get(meta["grade_id"], "")
            cells.append({"kind": "solution", "grade_id": meta["grade_id"], "source": answer})
        elif meta.get("grade"):
            cells.append({"kind": "test", "grade_id": meta["grade_id"], "source": cell.source})
        else:  # ordinary cells as released: nbgrader leaves them as they are in the source
            cells.append({"kind": "code", "source": cell.source})
    return {"cells": cells}


def recheck(settings: Settings, submission: nbformat.NotebookNode, worker: int = 0) -> dict | None:
    """Re-run the submission in a fresh isolated process: its verdicts and the tampering it saw (None if it died)."""
    nonce = secrets.token_hex(16)
    command = [sys.executable, str(Path(__file__).with_name("recheck.py"))]
    if settings.isolated:
        command = isolate.isolated_command(command, hidden_paths(settings.root, settings.db_url), [],
                                           settings.memory_gb)
    env = {**worker_environment(settings, worker), "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg"}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, start_new_session=True)
    process.stdin.write(json.dumps({**recheck_job(settings, submission), "nonce": nonce}))
    process.stdin.close()
    status, _, log = supervise(process, settings.wall_seconds, settings.memory_gb)
    lines = [line for line in log.splitlines() if line.startswith(nonce)]
    if status != GRADED or not lines:
        return None
    return json.loads(lines[-1].removeprefix(nonce))


def settle(settings: Settings, outcome: Outcome, checked: dict | None) -> Outcome:
    """Lower every score the re-check did not confirm, and turn the two verdicts into a status and a reason."""
    with Gradebook(settings.db_url) as gradebook:
        submission = gradebook.find_submission(settings.assignment, outcome.student)
        grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
        if checked is None:
            outcome.status, outcome.reason = MANUAL, "the fresh-process re-check did not finish: look at it by hand"
            for grade in grades:
                grade.auto_score = 0.0
        else:
            denied = []
            for grade in grades:
                error = checked["verdicts"].get(grade.name, "not run")
                if error and (grade.auto_score or 0) > 0:
                    grade.auto_score = 0.0
                    denied.append(f"'{grade.name}' ({error})")
            if checked["tampering"]:
                outcome.status = TAMPERED
                outcome.reason = "; ".join(dict.fromkeys(checked["tampering"]))[:400]
            elif denied:
                outcome.status = MANUAL
                outcome.reason = "passed in the notebook but failed the fresh-process re-check: " + ", ".join(denied)
        gradebook.db.commit()
        outcome.score, outcome.max_score = submission.score, submission.max_score
    return outcome


def _assignment_max_score(settings: Settings) -> float:
    """The assignment's total points, for rows that have no graded submission."""
    with Gradebook(settings.db_url) as gradebook:
        return gradebook.find_assignment(settings.assignment).max_score


def load_assignment(settings: Settings) -> nbformat.NotebookNode:
    """Generate the assignment into the grading folder's release/ (this loads the gradebook); return its notebook."""
    env = {**os.environ, "NBGRADER_DB_URL": settings.db_url, "GRADING_ROOT": str(settings.root)}
    process = _nbgrader("generate_assignment", settings.assignment, "--force",
                        f"--CourseDirectory.release_directory={settings.root / 'release'}", env=env)
    log, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"nbgrader could not load {settings.assignment} into the gradebook:\n{log[-2000:]}")
    return nbformat.read(settings.root / "release" / settings.assignment / f"{settings.assignment}.ipynb", 4)


def grade_student(settings: Settings, release: nbformat.NotebookNode, student: str, worker: int) -> Outcome:
    """Preflight, grade, re-check and settle one submission; whatever happens, return its row."""
    start = time.perf_counter()
    try:
        outcome = _grade_student(settings, release, student, worker)
    except Exception as error:  # noqa: BLE001 (a grader bug on one notebook must not stop the batch)
        outcome = Outcome(student, MANUAL, f"the grader itself failed on this submission ({type(error).__name__}: "
                                           f"{str(error)[:200]}); the submission is untouched")
    outcome.seconds = time.perf_counter() - start
    return outcome


def _grade_student(settings: Settings, release: nbformat.NotebookNode, student: str, worker: int) -> Outcome:
    """The steps of grade_student, which may raise."""
    folder = settings.root / "submitted" / student / settings.assignment
    path = folder / f"{settings.assignment}.ipynb"
    if not path.exists():
        found = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        _forget_submission(settings, student)
        return Outcome(student, MALFORMED, f"no {path.name} in the submission folder (found {found})")
    checked = preflight(path, release)
    if checked.status in (MALFORMED, MANUAL):
        _forget_submission(settings, student)
        return Outcome(student, checked.status, checked.reason)
    if checked.reasons:
        _keep_original(settings, student, path)
        nbformat.write(checked.notebook, path)
    outcome = grade_one(settings, student, worker)
    if outcome.status in (GRADED, OUT_OF_MEMORY):
        outcome = settle(settings, outcome, recheck(settings, checked.notebook, worker))
    if checked.reasons and outcome.status == GRADED:
        outcome.reason = "; ".join(filter(None, [checked.reason, outcome.reason]))
    return outcome


def _keep_original(settings: Settings, student: str, path: Path) -> None:
    """Before a repaired notebook replaces the submission, keep the student's file exactly as it came."""
    keep = settings.root / "originals" / student / settings.assignment / path.name
    if not keep.exists():
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, keep)


def grade_all(settings: Settings, students: list[str] | None = None) -> list[Outcome]:
    """Grade every (or the named) submission of the assignment with `jobs` workers; one outcome per student."""
    release = load_assignment(settings)
    folder = settings.root / "submitted"
    everyone = sorted(p.parent.name for p in folder.glob(f"*/{settings.assignment}") if p.is_dir())
    chosen = [s for s in everyone if not students or s in students]
    workers = max(1, settings.jobs)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(grade_student, settings, release, student, index % workers)
                   for index, student in enumerate(chosen)]
        outcomes = [future.result() for future in futures]
    top = _assignment_max_score(settings)
    for outcome in outcomes:
        outcome.max_score = outcome.max_score or top
    return outcomes


def write_report(settings: Settings, outcomes: list[Outcome]) -> Path:
    """report.csv next to grades.csv: the rows of the students graded now replaced, every other row kept."""
    path = settings.root / "report.csv"
    rows = []
    if path.exists():
        with path.open() as handle:
            graded_now = {o.student for o in outcomes}
            rows = [row for row in csv.DictReader(handle)
                    if row["assignment"] != settings.assignment or row["student_id"] not in graded_now]
    rows += [{"student_id": o.student, "assignment": settings.assignment, "score": f"{o.score:g}",
              "max_score": f"{o.max_score:g}", "status": o.status, "reason": o.reason, "seconds": f"{o.seconds:.1f}"}
             for o in outcomes]
    rows.sort(key=lambda row: (row["assignment"], row["student_id"]))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, REPORT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary(settings: Settings, outcomes: list[Outcome], seconds: float) -> str:
    """The table printed at the end of a batch."""
    width = max([len(o.student) for o in outcomes] + [7])
    lines = [f"{settings.assignment}: {len(outcomes)} submissions in {seconds:.0f} s with {settings.jobs} worker(s)",
             f"{'student':<{width}}  {'score':>11}  {'status':<20}  {'seconds':>7}  reason"]
    for o in outcomes:
        lines.append(f"{o.student:<{width}}  {o.score:>5g} / {o.max_score:<3g}  {o.status:<20}  {o.seconds:7.1f}  "
                     f"{o.reason}")
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines.append("status counts: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    return "\n".join(lines)
