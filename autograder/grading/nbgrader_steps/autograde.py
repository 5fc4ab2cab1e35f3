"""nbgrader's own run of one submission: `nbgrader autograde` with the student's kernel in the sandbox.

nbgrader runs the notebook, hidden tests included, scores its test cells into the gradebook and writes the
autograded notebook (the feedback's basis). Its kernel is started through isolate.py, under a uid and in a cgroup of
its own, so it sees nothing but what a notebook needs and talks to nbgrader only over IPC sockets in a private
tmpfs; nbgrader itself runs wrapped, so that nothing the kernel leaves behind outlives the run. Its verdicts are one
half of each point (pipeline.py).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from autograder.grading.jail import cgroups, isolate, supervise
from autograder.grading.limits import TMP_MB
from autograder.grading.settings import CONFIG_DIR, Settings, sandbox_environment, sandbox_reads
from autograder.grading.status import Status

KERNEL = "residual-course-isolated"
MEMORY_ERROR = re.compile(r"MemoryError|can't allocate memory|CUDA out of memory|OutOfMemoryError")


def autograde(settings: Settings, student: str, env: dict[str, str]) -> supervise.Ended:
    """Run `nbgrader autograde` for one student, isolated and supervised; say how it ended."""
    scratch = settings.root / ".isolation" / student
    shutil.rmtree(scratch, ignore_errors=True)
    runtime = scratch / "runtime"
    runtime.mkdir(parents=True)
    # jupyter_client writes the connection file to TMPDIR: in the runtime folder, the kernel (and only it) sees it
    env = {**sandbox_environment(env), "JUPYTER_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime),
           "NBGRADER_DB_URL": settings.db_url,
           "GRADING_ROOT": str(settings.root), "RELEASE_DIR": str(settings.root / "release")}
    command = [str(Path(sys.executable).parent / "nbgrader"), "autograde", settings.assignment, "--student",
               student, "--create", "--force"]
    cgroup = cgroups.for_sandbox(settings.memory_gb) if settings.isolated else None
    if settings.isolated:
        env["JUPYTER_PATH"] = str(_write_kernel_spec(settings, scratch, runtime, cgroup))
        # IPC sockets in the private tmpfs both sides see: the only channel between the kernel and nbgrader
        command += [f"--Execute.kernel_name={KERNEL}", "--KernelManager.transport=ipc",
                    f"--KernelManager.ip={runtime / 'kernel'}"]
        command = isolate.wrapped_command(command, runtime)
    ended = supervise.run(command, env=env, cwd=CONFIG_DIR, wall_seconds=settings.wall_seconds,
                          memory_gb=settings.memory_gb, cgroup=cgroup)
    shutil.rmtree(scratch, ignore_errors=True)
    log = settings.root / "logs" / settings.assignment / f"{student}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(ended.output or ended.reason)
    if ended.status == Status.GRADED and ended.returncode != 0:
        return supervise.Ended(Status.CRASHED, _crash_reason(ended.output), ended.output, ended.returncode)
    if ended.status == Status.GRADED:
        notebook = settings.autograded(student)
        if notebook.exists() and MEMORY_ERROR.search(notebook.read_text(errors="replace")):
            return supervise.Ended(Status.OUT_OF_MEMORY, f"a cell ran out of memory (limit {settings.memory_gb:g} "
                                                         "GiB); the other cells were graded", ended.output, 0)
    return ended


def _write_kernel_spec(settings: Settings, scratch: Path, runtime: Path, cgroup: cgroups.Cgroup | None) -> Path:
    """A kernel spec whose kernel starts inside isolate.py, with a uid and a cgroup of its own (a restarted kernel
    gets the same); returns the JUPYTER_PATH that holds it."""
    share = scratch / "share"
    spec = share / "kernels" / KERNEL
    spec.mkdir(parents=True)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    argv = isolate.isolated_command(kernel, memory_gb=settings.memory_gb, tmp_mb=TMP_MB, uid=isolate.sandbox_uid(),
                                    cgroup=list(cgroup.folders) if cgroup else [], read=sandbox_reads(),
                                    write=[runtime])
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "isolated", "language": "python"}))
    return share


def _crash_reason(log: str) -> str:
    """One sentence from nbgrader's log about why the run ended early."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash or a memory limit): nothing graded"
    errors = [line.strip() for line in log.splitlines() if "[ERROR]" in line or "Error" in line]
    return f"nbgrader stopped: {errors[-1][:200] if errors else 'no message'}"
