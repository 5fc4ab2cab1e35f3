"""Run a process tree under a wall-clock limit and a memory limit, with its output bounded, and always end it.

Whatever the processes do (print a gigabyte without a newline, fill a tmpfs, fork and orphan children, ignore
signals), `run` returns within the wall limit plus a few seconds, keeps at most `output_bytes` of what they
printed (the start, and the last OUTPUT_TAIL_BYTES), and leaves no process of the tree, nor of its control group
(cgroups.py), behind.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.grading.jail.cgroups import Cgroup
from autograder.grading.limits import (
    OUTPUT_BYTES,
    OUTPUT_TAIL_BYTES,
    SETTLE_SECONDS,
    WATCH_SECONDS,
    WATCHED_MEMORY,
)
from autograder.grading.status import Status

GIB = 1024**3


@dataclass
class Ended:
    """How a supervised process ended: GRADED when it exited by itself (with `returncode`), else why it was stopped."""

    status: Status
    reason: str
    output: str
    returncode: int | None = None


def run(command: list[str], *, env: dict[str, str], wall_seconds: float, memory_gb: float, stdin: bytes = b"",
        cwd: Path | None = None, pass_fds: tuple[int, ...] = (), output_bytes: int = OUTPUT_BYTES,
        on_start: Callable[[subprocess.Popen], None] | None = None, cgroup: Cgroup | None = None) -> Ended:
    """Start the command in a session of its own and supervise it until it ends or must be stopped."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds)
    if on_start is not None:
        on_start(process)
    return watch(process, stdin=stdin, wall_seconds=wall_seconds, memory_gb=memory_gb, output_bytes=output_bytes,
                 cgroup=cgroup)


def watch(process: subprocess.Popen, *, stdin: bytes = b"", wall_seconds: float, memory_gb: float,
          output_bytes: int = OUTPUT_BYTES, cgroup: Cgroup | None = None) -> Ended:
    """Supervise a started process (a Popen, or forkserver.Forked) with its stdin and stdout piped to us; with a
    cgroup, whatever is left in it is killed too, and a kill by its memory limit reads as out of memory."""
    writer = threading.Thread(target=_feed, args=(process, stdin), daemon=True)
    writer.start()
    output = _Output(output_bytes)
    reader = threading.Thread(target=output.drain, args=(process.stdout.fileno(),), daemon=True)
    reader.start()
    limit = memory_gb * GIB * WATCHED_MEMORY if memory_gb > 0 else float("inf")
    start, stopped = time.monotonic(), None
    while process.poll() is None:
        if time.monotonic() - start > wall_seconds:
            stopped = (Status.TIMEOUT, f"stopped after {wall_seconds:.0f} s, the limit for a whole notebook "
                                       "(an endless loop?)")
        elif memory_of(tree(getattr(process, "measured", process.pid))) > limit:
            stopped = (Status.OUT_OF_MEMORY, f"stopped when its processes used more than {limit / GIB:.1f} GiB")
        if stopped:
            break
        time.sleep(WATCH_SECONDS)
    kill_tree(process)
    if cgroup is not None:
        if not stopped and cgroup.ran_out_of_memory():
            stopped = (Status.OUT_OF_MEMORY, "the kernel stopped a process that went past the memory limit")
        cgroup.remove()
    reader.join(timeout=SETTLE_SECONDS)
    process.stdout.close()
    if stopped:
        return Ended(*stopped, output.text())
    return Ended(Status.GRADED, "", output.text(), process.returncode)


def _feed(process: subprocess.Popen, data: bytes) -> None:
    """Write the job to stdin, then close it (a process that never reads must not block us)."""
    try:
        process.stdin.write(data)
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass


class _Output:
    """The first `head_bytes` and the last OUTPUT_TAIL_BYTES of a stream, read in chunks (never a whole line)."""

    def __init__(self, head_bytes: int) -> None:
        self.head, self.tail, self.cut = bytearray(), collections.deque(), 0
        self.head_bytes, self.tail_size = head_bytes, 0

    def drain(self, fd: int) -> None:
        while chunk := _read(fd):
            room = self.head_bytes - len(self.head)
            self.head += chunk[:max(room, 0)]
            rest = chunk[max(room, 0):]
            if rest:
                self.tail.append(rest)
                self.tail_size += len(rest)
                while self.tail_size > OUTPUT_TAIL_BYTES:
                    dropped = self.tail.popleft()
                    self.tail_size -= len(dropped)
                    self.cut += len(dropped)

    def text(self) -> str:
        middle = f"\n[... {self.cut:,} bytes of output cut ...]\n".encode() if self.cut else b""
        return (bytes(self.head) + middle + b"".join(self.tail)).decode(errors="replace")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""


def tree(root: int) -> list[int]:
    """The process and all its descendants (sandboxed ones live in their own session and PID namespace)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def memory_of(pids: list[int]) -> int:
    """Resident memory of these processes, plus what their private tmpfs (/tmp, /dev/shm) holds."""
    total, seen = 0, set()
    own_root = os.stat("/")
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            root = os.stat(f"/proc/{pid}/root")
        except (OSError, IndexError, ValueError):
            continue
        if (root.st_dev, root.st_ino) == (own_root.st_dev, own_root.st_ino):
            continue  # not sandboxed: its /tmp is the host's
        for folder in ("tmp", "dev/shm"):
            try:
                device = os.stat(f"/proc/{pid}/root/{folder}").st_dev
                if device not in seen:
                    seen.add(device)
                    usage = os.statvfs(f"/proc/{pid}/root/{folder}")
                    total += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
            except OSError:
                continue
    return total


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started (each sandbox's namespace dies with its first process)."""
    for pid in reversed(tree(process.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        process.wait(timeout=SETTLE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
