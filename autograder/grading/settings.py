"""What one batch of grading runs with: the assignment, its folders and gradebook, limits, workers and GPUs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.grading.limits import MEMORY_GB, WALL_SECONDS

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPOSITORY / "autograder"  # nbgrader commands run here, where nbgrader_config.py is


@dataclass
class Settings:
    """How one batch runs."""

    assignment: str
    root: Path
    db_url: str
    jobs: int = 1
    wall_seconds: float = WALL_SECONDS
    memory_gb: float = MEMORY_GB
    gpus: int = 0
    isolated: bool = True

    @property
    def solution(self) -> Path:
        return REPOSITORY / "solutions" / self.assignment / f"{self.assignment}.ipynb"

    def submission(self, student: str) -> Path:
        return self.root / "submitted" / student / self.assignment / f"{self.assignment}.ipynb"

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment / f"{self.assignment}.ipynb"


def db_url_for(root: Path) -> str:
    """The gradebook URL, as nbgrader_config.py computes it; sqlite gets a generous lock timeout for parallel work."""
    url = os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{root / 'gradebook.db'}"
    if url.startswith("sqlite:") and "timeout=" not in url:
        url += ("&" if "?" in url else "?") + "timeout=120"
    return url


def slot_environment(settings: Settings, slot: int) -> dict[str, str]:
    """The environment of the worker holding `slot`: its share of the CPU cores and, with GPUs, its own GPU."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader, alembic
    if "OMP_NUM_THREADS" not in os.environ:  # J workers with a thread per core each would fight over the cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.jobs))
    if settings.gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % settings.gpus)
    return env


def sandbox_reads() -> list[Path]:
    """What sandboxed processes may read besides the interpreter and the course: the data sets' folders."""
    from residual_course.data import DEBIAN_FOLDERS, cache_dir

    return [path for path in (*DEBIAN_FOLDERS.values(), cache_dir()) if path.exists()]


def sandbox_environment(env: dict[str, str]) -> dict[str, str]:
    """A worker's environment plus what sandboxed Python needs: the course on its path, the data cache (read-only)."""
    from residual_course.data import cache_dir

    extra = {"PYTHONPATH": str(REPOSITORY), "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg"}
    if cache_dir().exists():
        extra["RESIDUAL_COURSE_SANDBOX_DATA"] = str(cache_dir())
    return {**env, **extra}
