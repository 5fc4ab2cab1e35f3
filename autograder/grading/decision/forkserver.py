"""The trusted decision's two processes, started from an interpreter that has imported torch once per batch.

Importing torch, numpy and IPython costs about 4 CPU-seconds, and every graded submission starts two sandboxed
Pythons (sandbox.py and trusted.py). A fork server, one per environment for the whole batch, imports them once; each
start forks it. The forked keeper enters fresh namespaces and forks the worker, the first process of its PID
namespace, which builds the sandbox as isolate.py does (isolate.enter_in_process: its cgroup, the new root, limits,
its own uid without capabilities, the seccomp filter, the scrubbed environment) and runs `python -m <module> <args>`
there. The keeper reports the worker's pid and exit code on a pipe of the caller's, and `Forked` looks like the
Popen that supervise.py watches: its pid heads the process tree that is measured and killed.

The server holds nothing of any submission: a request carries a module name, arguments, an environment and pipes;
what a process reads (the trusted job, hidden tests included) reaches it through its own pipes.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from autograder.grading.jail import isolate
from autograder.grading.limits import SETTLE_SECONDS, START_SECONDS

PRELOADED = ("torch", "torchvision.models", "numpy", "matplotlib.pyplot", "IPython.core.interactiveshell",
             "autograder.grading.decision.bridge", "autograder.grading.decision.graphs",
             "autograder.grading.decision.rebuilt")
KEPT_OUT = ("RESIDUAL_COURSE_CHECK_SALT",)  # per job: sent with each start, never part of a server's environment


class Forked:
    """A process started by a fork server, with the part of Popen's interface that supervise.py uses.

    `pid` is the keeper's (the tree that is killed); `measured` is the worker's once it exists, the tree whose
    memory counts (the keeper shares the server's pages and holds nothing of its own).
    """

    def __init__(self, status_fd: int, stdin_fd: int, stdout_fd: int) -> None:
        self._status, self._buffer, self.returncode, self._worker = status_fd, b"", None, None
        self.stdin, self.stdout = os.fdopen(stdin_fd, "wb"), os.fdopen(stdout_fd, "rb")
        line = self._line(START_SECONDS)
        if not line or not line.startswith("pid "):
            for stream in (self.stdin, self.stdout):
                stream.close()
            os.close(status_fd)
            raise OSError("the fork server did not start the process")
        self.pid = int(line.split()[1])

    @property
    def measured(self) -> int:
        self.poll()
        return self._worker or self.pid

    def _line(self, timeout: float | None) -> str | None:
        """The keeper's next line; None on timeout; '' when the keeper is gone."""
        while b"\n" not in self._buffer:
            if not select.select([self._status], [], [], timeout)[0]:
                return None
            chunk = os.read(self._status, 64)
            if not chunk:
                return ""
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> int | None:
        while self.returncode is None:
            line = self._line(timeout)
            if line is None:
                if timeout:
                    raise subprocess.TimeoutExpired("forked", timeout)
                return None
            if line.startswith("worker "):
                self._worker = int(line.split()[1])
                continue
            self.returncode = int(line.split()[1]) if line.startswith("exit ") else -signal.SIGKILL  # keeper killed
            os.close(self._status)
        return self.returncode


class ForkServer:
    """One server process for one environment; `start` is safe to call from several threads."""

    def __init__(self, env: dict[str, str]) -> None:
        """Start the server with only what a sandboxed process may see anyway (_visible): a forked process can read
        its server's starting environment in /proc/self/environ."""
        # matplotlib finds its fonts once, here, into a folder of the server's; each process gets an empty one at
        # the same path in its own /tmp, where matplotlib's remembered folder then points
        self.matplotlib = Path(tempfile.mkdtemp(prefix="forkserver-matplotlib-"))
        env = {**_visible(env), "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(self.matplotlib)}
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        server = [sys.executable, "-m", "autograder.grading.decision.forkserver", str(theirs.fileno())]
        self.process = subprocess.Popen(server, env=env, cwd="/", pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL)
        theirs.close()

    def start(self, argv: list[str], *, env: dict[str, str], read: list[Path], memory_gb: float,
              tmp_mb: int, uid: int, cgroup: list[Path] = (), pass_fds: tuple[int, ...] = ()) -> Forked:
        """Start `python <argv>` (argv: -m module args...) in a fresh sandbox of its own uid (and cgroup); the fds
        keep their numbers."""
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        status_read, status_write = os.pipe()
        env = {k: env[k] for k in (*isolate.PASSED_ENV, "RESIDUAL_COURSE_SANDBOX_DATA") if k in env}  # all it keeps
        request = {"argv": argv, "env": env, "read": [str(p) for p in read], "memory_gb": memory_gb,
                   "tmp_mb": tmp_mb, "uid": uid, "cgroup": [str(p) for p in cgroup], "pass_fds": list(pass_fds)}
        try:
            with self._lock:
                socket.send_fds(self._control, [json.dumps(request).encode()],
                                [stdin_read, stdout_write, status_write, *pass_fds])
        finally:
            for fd in (stdin_read, stdout_write, status_write):
                os.close(fd)
        return Forked(status_read, stdin_write, stdout_read)

    def close(self) -> None:
        self._control.close()  # the server sees the end of its requests and exits
        try:
            self.process.wait(timeout=SETTLE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.matplotlib, ignore_errors=True)


def _visible(env: dict[str, str]) -> dict[str, str]:
    """What of an environment a server starts with: the names isolate.py passes to a sandbox, no job's salt."""
    return {k: env[k] for k in isolate.PASSED_ENV if k in env and k not in KEPT_OUT}


_SERVERS: dict[tuple, ForkServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(env: dict[str, str]) -> ForkServer:
    """The batch's fork server for this environment (started on first use, stopped when the batch ends)."""
    key = tuple(sorted(_visible(env).items()))
    with _SERVERS_LOCK:
        if key not in _SERVERS or _SERVERS[key].process.poll() is not None:  # first use, or it died: a new one
            _SERVERS[key] = ForkServer(env)
        return _SERVERS[key]


@atexit.register
def _stop_servers() -> None:
    for server in _SERVERS.values():
        server.close()


# ------------------------------------------------------------ the server's side


def serve(control: socket.socket) -> None:
    """Import what every start needs, then fork a keeper per request until the caller closes the socket."""
    import importlib

    for module in PRELOADED:
        importlib.import_module(module)
    _warm_up_export()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    while True:
        data, fds, _, _ = socket.recv_fds(control, 1 << 20, 64)  # one request per message (SOCK_SEQPACKET)
        if not data:
            return
        if os.fork() == 0:
            control.close()
            _keeper(json.loads(data), fds)
        for fd in fds:
            os.close(fd)


def _warm_up_export() -> None:
    """The first torch.export in a process imports and sets up a second of machinery: do it once, here."""
    import torch
    from torch import nn

    from autograder.grading.decision.graphs import export_graph, quiet_export

    block = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2, 1))
    with quiet_export():
        for training in (True, False):
            export_graph(block.train(training), (torch.zeros(2, 1, 3, 3),), [])


def _keeper(request: dict, fds: list[int]) -> None:
    """Report its pid; in fresh namespaces fork the worker (PID 1 there), report it, wait, report its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    stdin, stdout, status, *received = fds
    code = 1
    try:
        os.write(status, f"pid {os.getpid()}\n".encode())
        os.setsid()
        isolate.unshare_namespaces()
        worker = os.fork()
        if worker == 0:
            os.close(status)
            _worker(request, stdin, stdout, dict(zip(received, request["pass_fds"], strict=True)))
        for fd in (stdin, stdout, *received):
            os.close(fd)
        os.write(status, f"worker {worker}\n".encode())
        code = os.waitstatus_to_exitcode(os.waitpid(worker, 0)[1])
    except BaseException:  # noqa: BLE001 (a keeper must always report and exit)
        traceback.print_exc()
    finally:
        try:
            os.write(status, f"exit {code}\n".encode())
        finally:
            os._exit(0)


def _keep_only_its_descriptors(stdin: int, stdout: int, passed: dict[int, int]) -> None:
    """Pipes on 0, 1 and 2, each passed descriptor at the number it was asked for, every other descriptor closed."""
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stdout, 2)
    moved = {fcntl.fcntl(fd, fcntl.F_DUPFD, 256): wanted for fd, wanted in passed.items()}  # out of the way
    for fd in (stdin, stdout, *passed):
        os.close(fd)
    for fd, wanted in moved.items():
        os.dup2(fd, wanted)
        os.close(fd)
    keep = {0, 1, 2, *passed.values()}
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _worker(request: dict, stdin: int, stdout: int, passed: dict[int, int]) -> None:
    """The sandboxed process: its pipes in place, the sandbox entered, then `python -m module args` run here."""
    code = 1
    try:
        isolate.LIBC.prctl(isolate.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with its keeper
        _keep_only_its_descriptors(stdin, stdout, passed)
        os.environ.clear()
        os.environ.update(request["env"])
        scrubbed = isolate.enter_in_process([Path(p) for p in request["read"]], request["memory_gb"],
                                            request["tmp_mb"], int(request["uid"]),
                                            [Path(p) for p in request["cgroup"]])
        os.environ.clear()
        os.environ.update(scrubbed)
        import matplotlib
        import torch

        Path(matplotlib.get_configdir()).mkdir(parents=True, exist_ok=True)  # the server's path, in this /tmp

        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit():
            torch.set_num_threads(int(threads))
        flag, module, *args = request["argv"]
        if flag != "-m":
            raise SystemExit("forkserver runs modules only: -m <module> <args>")
        sys.path[0] = os.getcwd()  # as `python -m` started in the fresh home
        sys.dont_write_bytecode = True  # as PYTHONDONTWRITEBYTECODE=1 at its start
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 (as Python would: the traceback on stderr, exit code 1)
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
