"""Run one untrusted process (a student's kernel, or the fresh-process re-check) cut off from everything else.

`python autograder/grading/isolate.py [options] -- command...` (a plain script, so kernels can start it from
anywhere) re-executes itself inside new network, mount and PID namespaces (`unshare`), then, still as root but
about to give up every capability:

- brings up a loopback device and nothing else (no network);
- mounts a private /tmp and an empty folder over every path a submission must not read (the solutions, the tests,
  the gradebook, the other students' work, the git history), keeping only the paths named with --keep;
- remounts everything else read-only, so nothing it writes outlives it but its own /tmp and the kept paths;
- sets resource limits (data memory, file size, no core dumps), a scrubbed environment, its own home and
  working folder;
- drops all capabilities (bounding set included, no new privileges) and runs the command.

Without permission to create namespaces (not root, or a container that forbids it) it says so once and runs the
command with the limits, the scrubbed environment and the working folder only.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

INSIDE = "RESIDUAL_COURSE_ISOLATED"
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "NBGRADER_EXECUTION",
              "RESIDUAL_COURSE_FAST", "RESIDUAL_COURSE_REQUIRE_GPU", "JPY_PARENT_PID", "PYDEVD_DISABLE_FILE_VALIDATION")
GIB = 1024**3


def namespaces_available() -> bool:
    """Whether this process may create network, mount and PID namespaces (root on a normal Linux host)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "true"], capture_output=True)
    return probe.returncode == 0


def isolated_command(command: list[str], hide: list[Path], keep: list[Path], memory_gb: float,
                     workdir: Path | None = None) -> list[str]:
    """The argv that runs `command` isolated: pass it to subprocess (or use it as a kernel spec's argv)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--memory-gb", str(memory_gb)]
    for path in hide:
        argv += ["--hide", str(path)]
    for path in keep:
        argv += ["--keep", str(path)]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    return [*argv, "--", *command]


def _mount(*args: str, fds: tuple[int, ...] = ()) -> None:
    """mount(8), failing loudly: an isolation step that silently did nothing would be worse than none."""
    subprocess.run(["mount", *args], check=True, capture_output=True, pass_fds=fds)


def _private_tmp_hide_and_keep(hide: list[Path], keep: list[Path]) -> None:
    """A private /tmp, an empty tmpfs (or /dev/null) over each hidden path, then the kept paths bound back."""
    needed = [path for path in _course_and_python() if path.is_relative_to("/tmp")]  # e.g. a checkout in /tmp
    needed_handles = [os.open(path, os.O_PATH) for path in needed]  # still reachable once /tmp is covered
    handles = [os.open(path, os.O_PATH) for path in keep]
    _mount("-t", "tmpfs", "-o", "size=2g,mode=1777", "tmpfs", "/tmp")
    _bind_back(needed, needed_handles)
    for path in hide:
        if path.is_dir():
            _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(path))
        elif path.exists():
            _mount("--bind", "/dev/null", str(path))
    _bind_back(keep, handles)
    _mount("-t", "tmpfs", "-o", "size=1g,mode=1777", "tmpfs", "/dev/shm")
    _read_only_except({"/tmp", "/dev/shm", *map(str, keep)})


def _course_and_python() -> list[Path]:
    """The course's checkout and the Python running it: a submission must import them wherever they live."""
    return list(dict.fromkeys(Path(p).resolve() for p in (Path(__file__).parents[2], sys.prefix, sys.base_prefix)))


def _bind_back(paths: list[Path], handles: list[int]) -> None:
    """Bind each path (opened before it was covered) back at its own place."""
    for path, handle in zip(paths, handles, strict=True):
        path.mkdir(parents=True, exist_ok=True)
        _mount("--no-canonicalize", "--bind", f"/proc/self/fd/{handle}", str(path), fds=(handle,))
        os.close(handle)


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace, in mount order."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), point))  # \040 is a space
    return list(dict.fromkeys(points))


def _read_only_except(writable: set[str]) -> None:
    """Remount everything else read-only: a submission cannot rewrite the course, the venv or a later grader's files.

    The root file system must succeed; an exotic mount elsewhere that refuses is left as it is.
    """
    for point in _mount_points():
        if point in writable or point.startswith(("/proc", "/sys", "/dev")):
            continue
        try:
            _mount("-o", "remount,bind,ro", point)
        except subprocess.CalledProcessError:
            if point == "/" or Path(sys.prefix).is_relative_to(point) or Path(__file__).is_relative_to(point):
                raise


def _set_limits(memory_gb: float) -> None:
    """Heap and anonymous memory (skipped on a GPU, where the supervisor's watch suffices), file size, no cores."""
    if memory_gb > 0 and not _uses_gpu():
        limit = int(memory_gb * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # not RLIMIT_AS: torch maps GBs it never uses
    resource.setrlimit(resource.RLIMIT_FSIZE, (GIB, GIB))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _uses_gpu() -> bool:
    """Whether an NVIDIA device is visible to this process (without importing torch)."""
    return Path("/dev/nvidiactl").exists() and os.environ.get("CUDA_VISIBLE_DEVICES", "0") != ""


def _scrubbed_environment(home: Path) -> dict[str, str]:
    """Only what a kernel needs; nothing that names the grader's files, tokens or proxies."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home / ".matplotlib"), MPLBACKEND="Agg",
               RESIDUAL_COURSE_DATA=str(home / ".no-data-cache"), PYTHONDONTWRITEBYTECODE="1")
    return env


def _enter(args: argparse.Namespace) -> None:
    """Inside the new namespaces: network, mounts, limits, environment, then drop capabilities and exec."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    _private_tmp_hide_and_keep([Path(p) for p in args.hide], [Path(p) for p in args.keep])
    _run(args, drop=["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs",
                     "--"])


def _run(args: argparse.Namespace, drop: list[str]) -> None:
    """Limits, a fresh home (the working folder), the scrubbed environment; then become the command."""
    home = Path(args.workdir) if args.workdir else Path("/tmp/submission")
    home.mkdir(parents=True, exist_ok=True)
    (home / ".no-data-cache").mkdir(exist_ok=True)
    os.chdir(home)
    _set_limits(args.memory_gb)
    command = [*drop, *args.command]
    os.execvpe(command[0], command, _scrubbed_environment(home))


def main() -> None:
    """Re-run inside fresh namespaces when possible, then set everything up there and exec the command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hide", action="append", default=[], help="a path the command must not see")
    parser.add_argument("--keep", action="append", default=[], help="a path under a hidden one that stays visible")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of the command (0: none)")
    parser.add_argument("--workdir", help="the command's home and working folder (default: a private /tmp folder)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    if os.environ.get(INSIDE) == "namespaces":
        _enter(args)
    elif namespaces_available():
        os.environ[INSIDE] = "namespaces"
        argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvp("unshare", ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--", *argv])
    else:
        print("isolate: cannot create namespaces here (needs root): running with limits and a scrubbed environment "
              "only, without network or file-system isolation", file=sys.stderr)
        _run(args, drop=[])


if __name__ == "__main__":
    main()
