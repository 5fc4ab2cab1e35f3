"""A control group per sandbox: its processes counted and limited together, and every one of them found at the end.

A uid's process limit (RLIMIT_NPROC) counts every process of that uid on the machine, and the supervisor's memory
watch polls. A cgroup of its own gives each sandbox a process limit (pids.max) and a memory limit (a backstop above
the watch, which reports first) that no other sandbox shares, and a list of its processes (cgroup.procs) that
orphans cannot leave. The driver creates the group before the sandbox starts; the sandbox's first process joins it
while it is still root; the driver kills what is left in it and removes it when the sandbox has ended.

Both cgroup hierarchies are served: v2 (one tree, `memory` and `pids` enabled for our children) and v1 (a tree per
controller). Where neither can be written (not root, a container that forbids it) `create` returns None and the
sandbox runs with its rlimits and the watch alone.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.grading.limits import CGROUP_MEMORY, MAX_PROCESSES

CONTROLLERS = ("memory", "pids")
_NAMES = itertools.count()


@dataclass(frozen=True)
class Cgroup:
    """One sandbox's group: its folder in each hierarchy (one in v2, one per controller in v1)."""

    folders: tuple[Path, ...]
    memory_events: Path  # where the kernel counts the OOM kills it made in the group (its "oom_kill" line)

    def join(self, pid: int = 0) -> None:
        """Move a process (0: this one) into the group, in every hierarchy."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")

    def processes(self) -> set[int]:
        """The pids in the group now (as this process's PID namespace numbers them)."""
        found: set[int] = set()
        for folder in self.folders:
            try:
                found |= {int(line) for line in (folder / "cgroup.procs").read_text().split()}
            except OSError:
                continue
        return found

    def ran_out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the group for its memory limit."""
        try:
            text = self.memory_events.read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", "0")) > 0

    def remove(self) -> None:
        """Kill every process left in the group, then remove it (orphans and daemons included)."""
        deadline = time.monotonic() + 10
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError:
                pass


def for_sandbox(memory_gb: float) -> Cgroup | None:
    """A sandbox's group: MAX_PROCESSES, and CGROUP_MEMORY times its memory limit (none when it has none)."""
    memory = int(memory_gb * 1024**3 * CGROUP_MEMORY) if memory_gb > 0 else None
    return create(memory, MAX_PROCESSES)


def create(memory_bytes: int | None, max_processes: int) -> Cgroup | None:
    """A new group below this process's own, with both limits set; None where cgroups cannot be written here."""
    name = f"residual-course-{os.getpid()}-{next(_NAMES)}"
    made: list[Path] = []
    try:
        unified = _v2_parent()
        if unified is not None:
            folders, events = {c: unified / name for c in CONTROLLERS}, unified / name / "memory.events"
            memory_file = "memory.max"
        else:
            parents = _v1_parents()
            if parents is None:
                return None
            folders, events = {c: parents[c] / name for c in CONTROLLERS}, parents["memory"] / name / \
                "memory.oom_control"
            memory_file = "memory.limit_in_bytes"
        for folder in dict.fromkeys(folders.values()):
            folder.mkdir()
            made.append(folder)
        if memory_bytes is not None:
            (folders["memory"] / memory_file).write_text(str(memory_bytes))
        (folders["pids"] / "pids.max").write_text(str(max_processes))
        return Cgroup(tuple(made), events)
    except OSError:
        for folder in made:
            folder.rmdir()
        return None


def _own_paths() -> dict[str, str]:
    """This process's cgroup in each hierarchy, by controller ("" for v2's unified one), from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _mounts() -> dict[str, Path]:
    """Where each cgroup hierarchy is mounted: v1 by controller, v2 as ""."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        kind, options = fields[separator + 1], fields[separator + 3].split(",")
        if kind == "cgroup2":
            mounts[""] = Path(fields[4])
        elif kind == "cgroup":
            for controller in CONTROLLERS:
                if controller in options:
                    mounts[controller] = Path(fields[4])
    return mounts


def _v2_parent() -> Path | None:
    """Our own v2 group, when it can give its children both controllers."""
    mounts, paths = _mounts(), _own_paths()
    if "" not in mounts or "" not in paths:
        return None
    parent = mounts[""] / paths[""].lstrip("/")
    if not set(CONTROLLERS) <= set((parent / "cgroup.controllers").read_text().split() if
                                   (parent / "cgroup.controllers").exists() else []):
        return None
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    missing = [c for c in CONTROLLERS if c not in enabled]
    if missing:  # fails (EBUSY) when our group holds processes and is not the root: then v1, or nothing
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    return parent


def _v1_parents() -> dict[str, Path] | None:
    """Our own group in the v1 memory and pids hierarchies, when both are mounted."""
    mounts, paths = _mounts(), _own_paths()
    if not all(c in mounts and c in paths for c in CONTROLLERS):
        return None
    return {c: mounts[c] / paths[c].lstrip("/") for c in CONTROLLERS}
