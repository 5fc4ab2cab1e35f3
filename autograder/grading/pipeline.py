"""One submission, start to end: preflight, review flags, nbgrader's run, the trusted decision, then one status.

A point counts only when both nbgrader's run and the trusted decision (decide.py) award it; `settle` is the one
place where a submission's scores are lowered and its status and reason are decided. Whatever happens, the
submission ends as one row of the report, and a run that could not finish leaves no score behind.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder.grading.decision import decide
from autograder.grading.intake import flags
from autograder.grading.intake.preflight import MALFORMED, MANUAL, preflight
from autograder.grading.jail import supervise
from autograder.grading.nbgrader_steps import autograde as nbgrader_run
from autograder.grading.report import Outcome
from autograder.grading.settings import Settings
from autograder.grading.status import Status


def grade_student(settings: Settings, release: nbformat.NotebookNode, student: str, env: dict[str, str]) -> Outcome:
    """Grade one submission; whatever happens (a grader bug included), return its row."""
    start = time.perf_counter()
    try:
        outcome = _grade(settings, release, student, env)
    except Exception as error:  # noqa: BLE001 (a grader bug on one notebook must not stop the batch)
        outcome = Outcome(student, Status.MANUAL, f"the grader itself failed on this submission "
                                                  f"({type(error).__name__}: {str(error)[:200]}); the submission "
                                                  "is untouched")
    outcome.seconds = time.perf_counter() - start
    return outcome


def _grade(settings: Settings, release: nbformat.NotebookNode, student: str, env: dict[str, str]) -> Outcome:
    """The steps of grade_student, which may raise."""
    path = settings.submission(student)
    if not path.exists():
        found = ", ".join(p.name for p in path.parent.iterdir()) or "nothing"
        forget(settings, student)
        return Outcome(student, Status.MALFORMED, f"no {path.name} in the submission folder (found {found})")
    original = _original(settings, student)
    checked = preflight(original if original.exists() else path, release)  # a re-grade finds the same repairs
    if checked.status in (MALFORMED, MANUAL):
        forget(settings, student)
        return Outcome(student, Status(checked.status), checked.reason)
    if checked.reasons:
        if not original.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, original)
        nbformat.write(checked.notebook, path)
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in checked.notebook.cells
               if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}
    review = "; ".join(flags.review_reasons(answers))
    with ThreadPoolExecutor(1) as trusted_side:  # the two runs are independent: they overlap
        decided = trusted_side.submit(decide.decide, settings, decide.build_job(settings, checked.notebook), env)
        ran = nbgrader_run.autograde(settings, student, env)
        decision, why = decided.result()
    if ran.status in (Status.TIMEOUT, Status.CRASHED):
        shutil.rmtree(settings.autograded(student).parent, ignore_errors=True)
        forget(settings, student)
        return Outcome(student, ran.status, ran.reason, review=review)
    outcome = settle(settings, student, ran, decision, why)
    show_trusted_outputs(settings.autograded(student), decision, why)
    notes = decision.notes if decision is not None else []
    outcome.review = "; ".join(filter(None, [review, *(f"a class relabelled: {note}" for note in notes)]))
    if checked.reasons:
        outcome.reason = "; ".join(filter(None, [checked.reason, outcome.reason]))
    return outcome


def settle(settings: Settings, student: str, ran: supervise.Ended, decision: decide.Decision | None,
           why: str) -> Outcome:
    """Lower every score the trusted decision did not award; decide the status and the reason."""
    status, reason = (Status.OUT_OF_MEMORY, ran.reason) if ran.status == Status.OUT_OF_MEMORY else (Status.GRADED, "")
    disagreeing = {} if decision is None else kernel_disagreements(settings.autograded(student), decision)
    with Gradebook(settings.db_url) as gradebook:
        submission = gradebook.find_submission(settings.assignment, student)
        grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
        denied = []
        for grade in grades:
            verdict = why if decision is None else decision.verdicts.get(grade.name, "not run by the trusted decision")
            verdict = verdict or disagreeing.get(grade.name)
            if verdict and (grade.auto_score or 0) > 0:
                grade.auto_score = 0.0
                denied.append(f"'{grade.name}' ({verdict[:160]})")
        gradebook.db.commit()
        score, top = submission.score, submission.max_score
    if decision is None:
        status, reason = Status.MANUAL, why
    elif decision.mismatches:  # the module computes one thing when it runs and another when it is traced
        status, reason = Status.TAMPERED, "; ".join(decision.mismatches)[:400]
    elif decision.export_failures and (denied or score < top):  # points lost to what grading cannot run
        status, reason = Status.MANUAL, "; ".join(decision.export_failures)[:400]
    elif denied and decision.sandbox_error:
        status, reason = Status.MANUAL, f"the student's process stopped answering the trusted decision " \
                                        f"({decision.sandbox_error[:200]})"
    elif denied:
        status = Status.TAMPERED
        reason = "the notebook run awarded points the trusted decision did not: " + ", ".join(denied)
    return Outcome(student, status, reason[:600], score, top)


CHECK_LINE = re.compile(r"^  (PASS|FAIL)  (.+)$", re.MULTILINE)
OUTPUT_CUT = "[output cut:"


def kernel_disagreements(path: Path, decision: decide.Decision) -> dict[str, str]:
    """Test cells where the student's own kernel printed what contradicts its award: a check's FAIL line in a cell
    nbgrader scored (an exception handler or hook swallowed the failure), or, unless the output was cut for size,
    no PASS line where the trusted decision's same check printed one (the checks' output was silenced)."""
    if not path.exists():
        return {}
    notebook = nbformat.read(path, as_version=4)
    cut = OUTPUT_CUT in json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    found = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        printed = "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")
        kernel = set(CHECK_LINE.findall(printed))
        passed = {line for line in CHECK_LINE.findall(decision.outputs.get(meta["grade_id"], "")) if line[0] == "PASS"}
        if any(kind == "FAIL" for kind, _ in kernel):
            found[meta["grade_id"]] = "the notebook's own run printed a failed check yet scored the cell"
        elif passed - kernel and not cut:
            found[meta["grade_id"]] = "the notebook's own run did not print the checks the cell runs"
    return found


def show_trusted_outputs(path: Path, decision: decide.Decision | None, why: str) -> None:
    """The feedback shows what the trusted decision printed for each test cell, and no other output.

    Outputs of the student's own kernel could carry anything its hooks printed (a hidden test's source, say):
    none of them reaches the feedback.
    """
    if not path.exists():
        return
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        cell.outputs = []
        if meta.get("grade") and not meta.get("solution"):
            text = why if decision is None else decision.outputs.get(meta["grade_id"], "")
            verdict = None if decision is None else decision.verdicts.get(meta["grade_id"])
            if verdict and verdict not in text:
                text += f"{verdict}\n"
            if text:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nbformat.write(notebook, path)


def forget(settings: Settings, student: str) -> None:
    """Drop a submission from the gradebook, so no stale score survives a timeout, a crash or a bad file."""
    with Gradebook(settings.db_url) as gradebook:
        try:
            gradebook.remove_submission(settings.assignment, student)
        except MissingEntry:
            pass


def _original(settings: Settings, student: str) -> Path:
    """Where the student's file is kept, exactly as it came, before a repaired notebook replaces it."""
    return settings.root / "originals" / student / settings.assignment / f"{settings.assignment}.ipynb"
