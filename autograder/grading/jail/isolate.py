"""Run one untrusted process (a student's kernel, or its process in the trusted decision) in a sandbox of its own.

`python autograder/grading/jail/isolate.py [options] -- command...` (a plain script, so kernels can start it from
anywhere) re-executes itself inside new network, mount, PID, UTS and IPC namespaces (`unshare`; the whole
namespace dies with it), then, as root for the last time:

- brings up a loopback device and nothing else (no network);
- builds a new root file system on a tmpfs that holds only what a submission needs, read-only: the system's
  programs and libraries (/usr, /etc), the interpreter and its packages, the course package, the data sets, and
  the paths named with --read; a fresh /proc whose /proc/sys is read-only, a read-only /sys, a /dev with the
  harmless devices (and the GPU's); everything else (home folders, other checkouts and courses, the grading
  folder, the solutions) is absent, not merely hidden;
- gives it a private, size-limited /tmp and /dev/shm (its only writable places besides --write paths), which
  vanish with it;
- joins the control group the driver made for it (cgroups.py: its own process and memory limits);
- sets resource limits (data memory, file size, processes, no core dumps) and a scrubbed environment;
- installs a seccomp filter (seccomp.py: no keyrings, no ptrace, no new namespaces...);
- becomes an unprivileged uid of its own (no other sandbox, and no user of the machine, has it) with no
  capabilities (bounding set included, no new privileges) and runs the command in a fresh home under /tmp.

`--wrap` instead runs a trusted program (nbgrader) in new PID and mount namespaces with a small tmpfs at the
--runtime folder, where the kernel's sockets live: when the program exits or is killed, every process it left
behind dies with its namespace, and nothing written there reaches the disk.

Without permission to create namespaces (not root, or a container that forbids it) it says so once and runs the
command with the limits, the scrubbed environment and the working folder only.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import os
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script (a kernel spec's argv): the course's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from autograder.grading.limits import (  # noqa: E402 (after the path above)
    DEV_SHM_MB,
    FILE_BYTES,
    MAX_PROCESSES,
    ROOT_TMPFS_MB,
    SANDBOX_UIDS,
)

INSIDE = "RESIDUAL_COURSE_ISOLATED"
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "NBGRADER_EXECUTION",
              "RESIDUAL_COURSE_FAST", "RESIDUAL_COURSE_REQUIRE_GPU", "RESIDUAL_COURSE_CHECK_SALT", "JPY_PARENT_PID",
              "PYDEVD_DISABLE_FILE_VALIDATION", "PYTHONPATH")
GIB = 1024**3
NEW_ROOT = Path("/mnt")  # a tmpfs is mounted over it inside the private mount namespace only
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 4, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
UNSHARE = ["unshare", "--net", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child", "--propagation",
           "private"]


def namespaces_available() -> bool:
    """Whether this process may create the namespaces and mounts the sandbox needs (root on a normal Linux host)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*UNSHARE, "sh", "-c", "mount -t tmpfs tmpfs /mnt && mount -t proc proc /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def needed_paths() -> list[Path]:
    """What every sandboxed Python needs to read: its interpreter, its packages and the course's code."""
    repository = Path(__file__).resolve().parents[3]
    course = [repository / "residual_course", repository / "autograder" / "__init__.py",
              repository / "autograder" / "grading"]
    pythons = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return [*sorted(pythons), *course]


_UIDS = itertools.count(secrets.randbelow(SANDBOX_UIDS[1] - SANDBOX_UIDS[0]))
_UIDS_LOCK = threading.Lock()


def sandbox_uid() -> int:
    """A uid for one sandbox: no two sandboxes of a batch share one, nor any user of the machine (a range far above
    them, at a random place for each batch; nothing a sandbox owns outlives it, so a reused uid finds nothing)."""
    low, high = SANDBOX_UIDS
    with _UIDS_LOCK:
        return low + next(_UIDS) % (high - low)


def isolated_command(command: list[str], *, memory_gb: float, tmp_mb: int, uid: int, cgroup: list[Path] = (),
                     read: list[Path] = (), write: list[Path] = ()) -> list[str]:
    """The argv that runs `command` in the sandbox: pass it to subprocess (or use it as a kernel spec's argv)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--memory-gb", str(memory_gb), "--tmp-mb", str(tmp_mb),
            "--uid", str(uid)]
    for option, paths in (("--cgroup", cgroup), ("--read", read), ("--write", write)):
        for path in paths:
            argv += [option, str(path)]
    return [*argv, "--", *command]


def wrapped_command(command: list[str], runtime: Path) -> list[str]:
    """The argv that runs a trusted program whose leftovers die with it, with a tmpfs at `runtime`."""
    return [sys.executable, str(Path(__file__).resolve()), "--wrap", "--runtime", str(runtime), "--", *command]


def _mount(*args: str) -> None:
    """mount(8), failing loudly: an isolation step that silently did nothing would be worse than none."""
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _bind(source: Path, writable: bool = False) -> None:
    """Bind `source` at the same path under the new root (read-only unless writable), creating its mount point."""
    if not source.exists():
        return
    target = NEW_ROOT / source.relative_to("/")
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    _mount("--rbind" if source.is_dir() else "--bind", str(source), str(target))
    if not writable:
        _mount("-o", "remount,bind,ro", str(target))


def _build_root(read: list[Path], write: list[Path], tmp_mb: int) -> None:
    """The sandbox's whole file system: a tmpfs with the allowed paths bound into it."""
    _mount("-t", "tmpfs", "-o", f"size={ROOT_TMPFS_MB}m,mode=0755", "tmpfs", str(NEW_ROOT))
    for folder, options in (("tmp", f"size={tmp_mb}m,mode=1777"), ("dev", "size=1m,mode=0755")):
        (NEW_ROOT / folder).mkdir()
        _mount("-t", "tmpfs", "-o", options, "tmpfs", str(NEW_ROOT / folder))
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            (NEW_ROOT / name.lstrip("/")).symlink_to(os.readlink(path))
        elif path.is_dir():
            _bind(path)
    for path in [*needed_paths(), *read]:
        if not str(path.resolve()).startswith(SYSTEM):
            _bind(path.resolve())
    for path in write:
        _bind(path.resolve(), writable=True)
    for device in [*DEVICES, *(p.name for p in Path("/dev").glob("nvidia*") if p.is_char_device())]:
        _bind(Path("/dev") / device, writable=True)
    (NEW_ROOT / "dev/shm").mkdir()
    _mount("-t", "tmpfs", "-o", f"size={DEV_SHM_MB}m,mode=1777", "tmpfs", str(NEW_ROOT / "dev/shm"))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        (NEW_ROOT / "dev" / name).symlink_to(target)
    (NEW_ROOT / "proc").mkdir()
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(NEW_ROOT / "proc"))
    _mount("--bind", str(NEW_ROOT / "proc/sys"), str(NEW_ROOT / "proc/sys"))
    _mount("-o", "remount,bind,ro", str(NEW_ROOT / "proc/sys"))
    (NEW_ROOT / "sys").mkdir()
    _mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(NEW_ROOT / "sys"))
    _mount("-o", "remount,ro", str(NEW_ROOT))


def _set_limits(memory_gb: float) -> None:
    """Heap and anonymous memory (skipped on a GPU, where the supervisor's watch suffices), files, processes."""
    if memory_gb > 0 and not _uses_gpu():
        limit = int(memory_gb * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # not RLIMIT_AS: torch maps GBs it never uses
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))  # per uid: the sandbox's own


def _uses_gpu() -> bool:
    """Whether an NVIDIA device is visible to this process (without importing torch)."""
    return Path("/dev/nvidiactl").exists() and os.environ.get("CUDA_VISIBLE_DEVICES", "0") != ""


def _scrubbed_environment(home: Path) -> dict[str, str]:
    """Only what a kernel needs; nothing that names the grader's files, tokens or proxies."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home / ".matplotlib"), MPLBACKEND="Agg",
               PYTHONDONTWRITEBYTECODE="1", RESIDUAL_COURSE_DATA=os.environ.get("RESIDUAL_COURSE_SANDBOX_DATA",
                                                                                str(home / ".no-data-cache")))
    return env


def _enter(args: argparse.Namespace) -> None:
    """Inside the new namespaces: its cgroup, network, the new root, limits, environment, the seccomp filter, then
    drop to the sandbox's uid and exec."""
    _join_cgroup([Path(p) for p in args.cgroup])
    home = build_sandbox([Path(p) for p in args.read], [Path(p) for p in args.write], args.tmp_mb, args.uid)
    drop = ["setpriv", f"--reuid={args.uid}", f"--regid={args.uid}", "--clear-groups", "--bounding-set=-all",
            "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--"]
    _run(args, home, drop, filtered=True)


def _join_cgroup(folders: list[Path]) -> None:
    """Move this process (and so everything it starts) into the sandbox's control group, in each hierarchy."""
    for folder in folders:
        (folder / "cgroup.procs").write_text(f"{os.getpid()}\n")


def _filter_system_calls() -> None:
    """The seccomp filter, or one line on stderr saying why this sandbox runs without it."""
    from autograder.grading.jail import seccomp

    why = seccomp.install()
    if why:
        print(f"isolate: {why}", file=sys.stderr)


def build_sandbox(read: list[Path], write: list[Path], tmp_mb: int, uid: int) -> Path:
    """As root, first process of fresh namespaces: loopback up, the new root built and entered; the fresh home."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    for path in write:
        _own(path, uid)
    _build_root(read, write, tmp_mb)
    os.chroot(NEW_ROOT)
    home = Path("/tmp/submission")
    home.mkdir(parents=True)
    (home / ".no-data-cache").mkdir()
    os.chown(home, uid, uid)
    os.chown(home / ".no-data-cache", uid, uid)
    return home


def unshare_namespaces() -> None:
    """What `unshare --net --mount --pid --uts --ipc` does, for a single-threaded process. The PID namespace is
    that of its next child, which must come first: that child calls enter_in_process."""
    flags = 0x40000000 | 0x00020000 | 0x20000000 | 0x04000000 | 0x08000000  # NEWNET NEWNS NEWPID NEWUTS NEWIPC
    if LIBC.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), f"unshare: {os.strerror(ctypes.get_errno())}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def enter_in_process(read: list[Path], memory_gb: float, tmp_mb: int, uid: int, cgroup: list[Path]) -> dict[str, str]:
    """isolate.py's sandbox, entered by the first process of fresh namespaces without an exec (forkserver.py):
    its cgroup, mounts made private (unshare's --propagation private), the new root, the fresh home, the limits,
    then the sandbox's uid with no capabilities, and the seccomp filter; returns the scrubbed environment."""
    _join_cgroup(cgroup)
    _mount("--make-rprivate", "/")
    home = build_sandbox(read, [], tmp_mb, uid)
    os.chdir(home)
    _set_limits(memory_gb)
    for capability in range(64):  # the bounding set, as setpriv --bounding-set=-all
        if LIBC.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # EINVAL: past the kernel's last capability
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # drops the permitted and effective capabilities with root
    header, empty = _CapHeader(0x20080522, 0), (_CapData * 2)()  # and the inheritable ones: all three sets empty
    if LIBC.capset(ctypes.byref(header), empty) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as after an exec: its own /proc/self is its own (subprocess uses it)
    _filter_system_calls()
    return _scrubbed_environment(home)


def _own(path: Path, uid: int) -> None:
    """Hand a writable path (the kernel's runtime folder, with its connection file) to the sandbox's uid."""
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chown(entry, uid, uid, follow_symlinks=False)
        if entry.is_dir():
            entry.chmod(stat.S_IRWXU)


def _run(args: argparse.Namespace, home: Path, drop: list[str], filtered: bool = False) -> None:
    """Limits, the fresh home as working folder, the scrubbed environment (and the seccomp filter, which the exec
    keeps); then become the command."""
    os.chdir(home)
    _set_limits(args.memory_gb)
    if filtered:
        _filter_system_calls()
    command = [*drop, *args.command]
    os.execvpe(command[0], command, _scrubbed_environment(home))


def _wrap(args: argparse.Namespace) -> None:
    """Run a trusted program in its own PID and mount namespaces, with a tmpfs for the kernel's sockets."""
    runtime = Path(args.runtime)
    if os.environ.get(INSIDE) != "wrapped":
        if not namespaces_available():
            os.execvp(args.command[0], args.command)
        os.environ[INSIDE] = "wrapped"
        argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvp("unshare", ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                              "--propagation", "private", "--", *argv])
    os.environ.pop(INSIDE)
    runtime.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(runtime))
    os.execvp(args.command[0], args.command)


def main() -> None:
    """Re-run inside fresh namespaces when possible, then set everything up there and exec the command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", action="append", default=[], help="an extra path the command may read")
    parser.add_argument("--write", action="append", default=[], help="a path the command may write (sockets)")
    parser.add_argument("--memory-gb", type=float, help="data-memory limit of the command (0: none)")
    parser.add_argument("--tmp-mb", type=int, help="size of the private /tmp, in MiB")
    parser.add_argument("--uid", type=int, help="the sandbox's own uid (isolate.sandbox_uid)")
    parser.add_argument("--cgroup", action="append", default=[], help="a folder of the sandbox's control group")
    parser.add_argument("--wrap", action="store_true", help="run a trusted program whose leftovers die with it")
    parser.add_argument("--runtime", help="with --wrap: the folder that becomes a small private tmpfs")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    if not args.wrap and None in (args.memory_gb, args.tmp_mb, args.uid):
        parser.error("--memory-gb, --tmp-mb and --uid are required: the driver passes limits.MEMORY_GB, "
                     "limits.TMP_MB and isolate.sandbox_uid()")
    if args.wrap:
        _wrap(args)
    elif os.environ.get(INSIDE) == "namespaces":
        _enter(args)
    elif namespaces_available():
        os.environ[INSIDE] = "namespaces"
        argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvp("unshare", [*UNSHARE, "--", *argv])
    else:
        print("isolate: cannot create namespaces here (needs root): running with limits and a scrubbed environment "
              "only, without network or file-system isolation", file=sys.stderr)
        home = Path(os.environ.get("TMPDIR", "/tmp")) / f"submission-{os.getpid()}"
        home.mkdir(parents=True, exist_ok=True)
        _run(args, home, drop=[])


if __name__ == "__main__":
    main()
