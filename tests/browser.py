"""A real JupyterLab on localhost and Debian's Chromium driven by Playwright, for the browser tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPOSITORY = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPOSITORY / "tests" / "screenshots"
# Render every cell (no windowing) so the test sees all outputs; the news and update checks are the course's own
# configuration's job (jupyter/student), not the test's.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}'}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(work: Path, make_target: str, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Start JupyterLab through the course's own `make` target on 127.0.0.1 with a random token.

    Yields (base URL, token) once the server answers; logs and JupyterLab's per-user state (LAB_STATE) go to `work`.
    """
    port, token = free_port(), secrets.token_hex(16)
    state = work / "lab-state"
    settings = state / "user-settings"
    for name, text in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(text)
    bin_dir = Path(sys.executable).parent
    lab_args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    command = ["make", "--no-print-directory", make_target, f"VENV={bin_dir.parent}", f"LAB_ARGS={lab_args}",
               f"LAB_STATE={state}"]
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env}
    log = open(work / f"jupyterlab-{make_target}.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, cwd=REPOSITORY, env=environment, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while status_of(f"{base}/api/status?token={token}") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`make {make_target}` did not start JupyterLab: see {log.name}")
            time.sleep(0.5)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def status_of(url: str) -> int:
    """HTTP status of a GET (0 when nothing answers)."""
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0
