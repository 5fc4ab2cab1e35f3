"""Grade every submission of one assignment, J at a time, each worker on its own share of cores (and GPU).

Submissions wait in one queue; a worker takes a free slot, grades a submission with that slot's environment
(its cores, its GPU) and gives the slot back, so that two submissions never share a GPU while another idles.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from autograder.grading.limits import LOAD_ASSIGNMENT_SECONDS
from autograder.grading.pipeline import grade_student
from autograder.grading.report import Outcome
from autograder.grading.settings import CONFIG_DIR, Settings, slot_environment


class Slots:
    """J slots, each one worker's environment; a submission holds one while it is graded."""

    def __init__(self, settings: Settings) -> None:
        self.free: queue.Queue[int] = queue.Queue()
        self.environments = {slot: slot_environment(settings, slot) for slot in range(max(1, settings.jobs))}
        for slot in self.environments:
            self.free.put(slot)

    def run(self, work: callable, *args: object) -> object:
        """Run work(environment, *args) holding a free slot."""
        slot = self.free.get()
        try:
            return work(self.environments[slot], *args)
        finally:
            self.free.put(slot)


def submitted_students(settings: Settings) -> list[str]:
    """Every student with a folder for this assignment under submitted/."""
    return sorted(p.parent.name for p in (settings.root / "submitted").glob(f"*/{settings.assignment}") if p.is_dir())


def load_assignment(settings: Settings) -> nbformat.NotebookNode:
    """Generate the assignment into the grading folder's release/ (this loads the gradebook); return its notebook."""
    env = {**os.environ, "NBGRADER_DB_URL": settings.db_url, "GRADING_ROOT": str(settings.root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "generate_assignment", settings.assignment,
                           "--force", f"--CourseDirectory.release_directory={settings.root / 'release'}"],
                          cwd=CONFIG_DIR, env=env, capture_output=True, text=True,
                          timeout=LOAD_ASSIGNMENT_SECONDS)
    if done.returncode != 0:
        raise SystemExit(f"nbgrader could not load {settings.assignment} into the gradebook:\n"
                         f"{(done.stdout + done.stderr)[-2000:]}")
    return nbformat.read(settings.root / "release" / settings.assignment / f"{settings.assignment}.ipynb", 4)


def grade_all(batches: list[tuple[Settings, list[str]]]) -> list[list[Outcome]]:
    """Grade each assignment's named submissions, all through one pool of `jobs` workers (so no worker idles
    between assignments); one list of outcomes per assignment, each in the order given."""
    releases = [load_assignment(settings) for settings, _ in batches]
    slots = Slots(batches[0][0])
    with ThreadPoolExecutor(max(1, batches[0][0].jobs)) as pool:
        futures = [[pool.submit(slots.run, lambda env, s, st, r: grade_student(s, r, st, env), settings, student,
                                release) for student in students]
                   for (settings, students), release in zip(batches, releases, strict=True)]
        outcomes = [[future.result() for future in row] for row in futures]
    for (settings, _), row in zip(batches, outcomes, strict=True):
        with Gradebook(settings.db_url) as gradebook:
            top = gradebook.find_assignment(settings.assignment).max_score
        for outcome in row:
            outcome.max_score = outcome.max_score or top
    return outcomes
