"""Look at a submission before grading it: valid, with its graded cells intact, or repaired, or set aside with why.

A notebook that went through Colab or another editor may come back without nbgrader's cell metadata, with a
solution cell duplicated, or with a graded cell edited or deleted. nbgrader alone then scores a silent 0 or stops
with a misleading message. Here each such notebook is matched against the released one: what can be re-attached
unambiguously is, and the rest goes to a person with the reason.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

OK, REPAIRED, MALFORMED, MANUAL = "ok", "repaired", "malformed", "needs manual grading"


@dataclass
class Preflight:
    """The verdict on one submission, the notebook to grade (None when it cannot be graded) and the reasons."""

    status: str
    notebook: NotebookNode | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One line for the report."""
        return "; ".join(self.reasons)


def _nbgrader(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata, {} when absent."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _grade_id(cell: NotebookNode) -> str | None:
    """The grade id of an nbgrader cell (solution, test or locked), else None."""
    meta = _nbgrader(cell)
    if meta.get("solution") or meta.get("grade") or meta.get("locked"):
        return meta.get("grade_id")
    return None


def read_submission(path: Path) -> Preflight:
    """Parse and validate the file; a broken one is MALFORMED with the parser's own words, never a traceback."""
    try:
        text = path.read_bytes().decode()
        json.loads(text)
    except UnicodeDecodeError:
        return Preflight(MALFORMED, reasons=["the file is not text (not a notebook saved by Jupyter)"])
    except json.JSONDecodeError as error:
        return Preflight(MALFORMED, reasons=[f"not valid JSON (line {error.lineno}, column {error.colno}: "
                                             f"{error.msg}); ask the student to re-download and re-submit it"])
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # noqa: BLE001 (nbformat raises several types; each becomes a sentence)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Preflight(MALFORMED, reasons=[f"valid JSON but not a valid notebook: {first_line}"])
    return Preflight(OK, notebook=notebook)


def preflight(path: Path, release: NotebookNode) -> Preflight:
    """Read the submission and make its nbgrader cells match the released notebook's, or say why they cannot."""
    verdict = read_submission(path)
    if verdict.notebook is None:
        return verdict
    notebook, reasons = verdict.notebook, verdict.reasons
    released = [cell for cell in release.cells if _grade_id(cell)]
    _keep_last_copy(notebook, reasons)
    missing = [cell for cell in released if _grade_id(cell) not in {_grade_id(c) for c in notebook.cells}]
    if missing:
        unresolved = _reattach(notebook, release, missing, reasons)
        if unresolved:
            return Preflight(MANUAL, reasons=[*reasons, unresolved])
    for cell in notebook.cells:
        gid = _grade_id(cell)
        original = next((c for c in released if _grade_id(c) == gid), None)
        if gid and original is not None and _nbgrader(original).get("grade") and not _nbgrader(original).get(
                "solution") and cell.source.strip() != original.source.strip():
            reasons.append(f"graded cell '{gid}' was edited: its released version was run")
    return Preflight(REPAIRED if reasons else OK, notebook, reasons)


def _keep_last_copy(notebook: NotebookNode, reasons: list[str]) -> None:
    """A cell copied within the notebook keeps nbgrader's id on its last copy only (the one that runs last)."""
    seen: set[str] = set()
    for cell in reversed(notebook.cells):
        gid = _grade_id(cell)
        if gid is None:
            continue
        if gid in seen:
            cell.metadata.pop("nbgrader", None)
            reasons.append(f"cell '{gid}' appeared more than once: the last copy was graded")
        seen.add(gid)


def _reattach(notebook: NotebookNode, release: NotebookNode, missing: list[NotebookNode], reasons: list[str]) -> str:
    """Give each missing nbgrader cell back its metadata, by cell id, by identical source, or by position."""
    by_id = {cell.get("id"): cell for cell in notebook.cells if cell.get("id")}
    by_source: dict[str, list[NotebookNode]] = {}
    for cell in notebook.cells:
        by_source.setdefault(cell.source.strip(), []).append(cell)
    for original in missing:
        gid = _grade_id(original)
        twin = by_id.get(original.get("id"))
        if twin is None or _grade_id(twin) or twin.cell_type != original.cell_type:
            candidates = [c for c in by_source.get(original.source.strip(), []) if not _grade_id(c)]
            twin = candidates[0] if len(candidates) == 1 else None
        if twin is None and not _nbgrader(original).get("solution"):
            twin = _restore_deleted(notebook, release, original)
            if twin is None:
                return f"graded cell '{gid}' is missing and its place in the notebook is unclear"
            reasons.append(f"graded cell '{gid}' was missing: restored from the released notebook")
            continue
        if twin is None:
            twin = _by_position(notebook, release, original)
        if twin is None:
            return (f"the answer cell '{gid}' lost its nbgrader metadata and cannot be told apart from the cells "
                    "around it: grade it by hand (formgrader) or ask for a fresh copy of the lesson")
        twin.metadata["nbgrader"] = copy.deepcopy(_nbgrader(original))
        reasons.append(f"nbgrader metadata of '{gid}' re-attached (lost in an editor round trip)")
    return ""


def _neighbours(release: NotebookNode, original: NotebookNode) -> tuple[NotebookNode | None, NotebookNode | None]:
    """The released cells just before and just after a cell."""
    index = next(i for i, c in enumerate(release.cells) if c is original)
    before = release.cells[index - 1] if index > 0 else None
    after = release.cells[index + 1] if index + 1 < len(release.cells) else None
    return before, after


def _locate(notebook: NotebookNode, released_cell: NotebookNode | None) -> int | None:
    """Index of the submission cell that is this released cell (same grade id, else same id, else same source)."""
    if released_cell is None:
        return None
    gid = _grade_id(released_cell)
    for index, cell in enumerate(notebook.cells):
        if (gid and _grade_id(cell) == gid) or (cell.get("id") and cell.get("id") == released_cell.get("id")):
            return index
    matches = [i for i, c in enumerate(notebook.cells) if c.source.strip() == released_cell.source.strip()]
    return matches[0] if len(matches) == 1 else None


def _by_position(notebook: NotebookNode, release: NotebookNode, original: NotebookNode) -> NotebookNode | None:
    """The answer cell is the single code cell between the released neighbours of the solution cell."""
    before, after = _neighbours(release, original)
    start, end = _locate(notebook, before), _locate(notebook, after)
    if start is None or end is None or end - start != 2:
        return None
    cell = notebook.cells[start + 1]
    return cell if cell.cell_type == original.cell_type and not _grade_id(cell) else None


def _restore_deleted(notebook: NotebookNode, release: NotebookNode, original: NotebookNode) -> NotebookNode | None:
    """Put a deleted test cell back right after the cell it follows in the release."""
    before, _ = _neighbours(release, original)
    start = _locate(notebook, before)
    if start is None:
        return None
    restored = copy.deepcopy(original)
    restored.outputs = []
    notebook.cells.insert(start + 1, restored)
    return restored
