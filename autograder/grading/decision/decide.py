"""The trusted decision on one submission: two sandboxed processes, one of them the student's, joined by pipes.

The student's process (student_side.py) gets the released notebook's ordinary cells and the student's answers; the
trusted process (trusted_side.py) gets the source notebook's cells, hidden tests included, on stdin, and a fresh
secret salt for the checks' random inputs. Neither is started with the other's code or data, and the only channel
between them is the pair of pipes, which carries data (wire.py); the salt is in the trusted process's environment
only. The trusted process's verdicts come back as its last line of output. On the CPU both are forked from the
batch's fork servers (forkserver.py), which have imported torch once for the whole batch.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import nbformat

from autograder.grading.decision import forkserver
from autograder.grading.jail import cgroups, isolate, supervise
from autograder.grading.limits import REPLY_SECONDS, SOLUTION_BEGIN, SOLUTION_END, START_SECONDS, TMP_MB
from autograder.grading.settings import Settings, sandbox_environment, sandbox_reads
from autograder.grading.status import Status

# Ordinary cells that demonstrate an answer (and may fail while it is unwritten): neither process of the trusted
# decision runs them, since no test cell depends on them (tests/test_autograde.py keeps that true).
AFTER_THE_EXERCISE = "uses-exercise"


@dataclass
class Decision:
    """The trusted side's verdict on each test cell (None: passed), what each printed, what it could not run, the
    graphs that were not what the student's module computes, notes for a person, and what stopped it."""

    verdicts: dict[str, str | None] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    export_failures: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sandbox_error: str = ""


def defined_names(source: str) -> list[str]:
    """The names a solution cell defines at its top level: the names its answer must define too."""
    lines = [line for line in source.splitlines() if SOLUTION_BEGIN not in line and SOLUTION_END not in line]
    names: list[str] = []
    statements = list(ast.parse("\n".join(lines)).body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
        elif isinstance(node, (ast.With, ast.If, ast.For, ast.While, ast.Try)):  # still the cell's top level
            statements[:0] = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
    return list(dict.fromkeys(names))


def build_job(settings: Settings, submission: nbformat.NotebookNode) -> dict:
    """Ordinary cells as released, the student's answer cells with the names to take from them, the test cells."""
    source = nbformat.read(settings.solution, as_version=4)
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in submission.cells
               if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cells.append({"kind": "solution", "grade_id": meta["grade_id"], "source": answers.get(meta["grade_id"], ""),
                          "names": defined_names(cell.source)})
        elif meta.get("grade"):
            cells.append({"kind": "test", "grade_id": meta["grade_id"], "source": cell.source})
        else:
            cells.append({"kind": "code", "source": cell.source,
                          "after": AFTER_THE_EXERCISE in cell.metadata.get("tags", [])})
    return {"cells": cells}


def decide(settings: Settings, job: dict, env: dict[str, str]) -> tuple[Decision | None, str]:
    """Run both processes under the batch's limits; the decision, or None and the reason it did not finish."""
    to_student, from_trusted = os.pipe()
    to_trusted, from_student = os.pipe()
    env = sandbox_environment(env)
    salt = {"RESIDUAL_COURSE_CHECK_SALT": str(secrets.randbelow(2**31))}
    reads = sandbox_reads()

    def launch(module: str, read_fd: int, write_fd: int, role_env: dict[str, str], stdin: bytes = b"",
               on_start: Callable[[object], None] = lambda _: None) -> supervise.Ended:
        """One of the two processes, supervised: forked from the batch's fork server into its sandbox (on the
        CPU; with GPUs, and without namespaces, a fresh interpreter starts, as before the fork server)."""
        argv = ["-m", f"autograder.grading.decision.{module}", str(read_fd), str(write_fd)]
        cgroup = cgroups.for_sandbox(settings.memory_gb) if settings.isolated else None
        jail = {"uid": isolate.sandbox_uid(), "cgroup": list(cgroup.folders) if cgroup else []}
        limits = {"wall_seconds": settings.wall_seconds, "memory_gb": settings.memory_gb, "cgroup": cgroup}
        if not settings.isolated or settings.gpus:
            python = [sys.executable, *argv]
            command = isolate.isolated_command(python, memory_gb=settings.memory_gb, tmp_mb=TMP_MB, read=reads,
                                               **jail) if settings.isolated else python
            return supervise.run(command, env=role_env, stdin=stdin, pass_fds=(read_fd, write_fd),
                                 on_start=on_start, **limits)
        try:
            process = forkserver.server_for(role_env).start(argv, env=role_env, read=reads,
                                                            memory_gb=settings.memory_gb, tmp_mb=TMP_MB,
                                                            pass_fds=(read_fd, write_fd), **jail)
        except OSError as error:
            on_start(None)
            if cgroup is not None:
                cgroup.remove()
            return supervise.Ended(Status.CRASHED, f"its sandbox could not be started ({error})", "")
        on_start(process)
        return supervise.watch(process, stdin=stdin, **limits)

    student: dict[str, supervise.Ended] = {}
    started = threading.Event()
    # both sides on one thread: a decision (the capstone's trainings above all) is then the same at every J, on every
    # machine; with the worker's share of cores the trusted side's reference training moved by 0.06 accuracy
    one_thread = {**env, "OMP_NUM_THREADS": "1"}

    def run_student() -> None:
        student["ended"] = launch("student_side", to_student, from_student, one_thread,
                                  on_start=lambda _: started.set())

    thread = threading.Thread(target=run_student, daemon=True)
    thread.start()
    started.wait(timeout=START_SECONDS)
    for fd in (to_student, from_student):
        os.close(fd)
    nonce = secrets.token_hex(16)
    job_bytes = json.dumps({**job, "nonce": nonce}).encode()
    ended = launch("trusted_side", to_trusted, from_trusted, {**one_thread, **salt}, stdin=job_bytes)
    for fd in (to_trusted, from_trusted):
        os.close(fd)
    thread.join(timeout=settings.wall_seconds + REPLY_SECONDS)
    lines = [line for line in ended.output.splitlines() if line.startswith(nonce)]
    if ended.status != Status.GRADED or not lines:
        gone = student.get("ended")  # the student's process may have died first (memory, a kill), and taken it down
        why = ended.reason or (f"the student's process stopped: {gone.reason}" if gone and gone.reason else
                               f"it ended without a verdict ({ended.output.strip().splitlines()[-1:]})")
        return None, f"the trusted decision did not finish: {why}"
    result = json.loads(lines[-1].removeprefix(nonce))
    return Decision(result["verdicts"], result["outputs"], result["export_failures"], result["mismatches"],
                    result["notes"], result["sandbox_error"]), ""
