"""A class of broken and hostile lesson-04 submissions, each with the score and status grading must give it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import nbformat
from cases.lesson_04 import RELU_BEFORE_ADD
from test_autograde import make_submission

ASSIGNMENT = "04_residual_blocks"
FULL = 18.0
HONEST = FULL - 2  # the ReLU-before-the-add mistake fails only 'basic-block-relu-after-add' (2 points)
WALL_SECONDS = 60


@dataclass(frozen=True)
class Submission:
    """What the student handed in, and what the batch must report for it."""

    build: Callable[[], str]  # the file's text
    score: float
    status: str
    reason: str = ""  # a fragment the report's reason must contain


def _text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook)


def _solved(mistaken: bool = False) -> nbformat.NotebookNode:
    return make_submission(ASSIGNMENT, (RELU_BEFORE_ADD,) if mistaken else ())


def _cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.id == cell_id)


def _append(cell_id: str, code: str, mistaken: bool = False) -> Callable[[], str]:
    """A solved (or mistaken) notebook with extra code at the end of one answer cell."""
    def build() -> str:
        notebook = _solved(mistaken)
        _cell(notebook, cell_id).source += "\n" + code
        return _text(notebook)
    return build


def _edited_test_cell() -> str:
    notebook = _solved(mistaken=True)
    _cell(notebook, "basic-block-relu-after-add").source = "pass  # the test was in my way"
    return _text(notebook)


def _deleted_test_cell() -> str:
    notebook = _solved(mistaken=True)
    notebook.cells.remove(_cell(notebook, "basic-block-relu-after-add"))
    return _text(notebook)


def _duplicated_answer_cell() -> str:
    notebook = make_submission(ASSIGNMENT, (RELU_BEFORE_ADD,))
    wrong = _cell(notebook, "basic-block")
    right = copy.deepcopy(_cell(_solved(), "basic-block"))
    right.id = "basic-block-copy"
    notebook.cells.insert(notebook.cells.index(wrong) + 1, right)  # the later, correct copy is the one that runs
    return _text(notebook)


def _stripped(keep_ids: bool) -> nbformat.NotebookNode:
    """A Colab round trip: every cell's metadata gone; without ids the answers can only be placed by position."""
    notebook = _solved()
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {}
        if not keep_ids:
            cell.id = f"colab-{index}"
    return notebook


def _stripped_and_moved() -> str:
    notebook = _stripped(keep_ids=False)
    answer = next(cell for cell in notebook.cells if "class BasicBlock" in cell.source)
    notebook.cells.insert(notebook.cells.index(answer) + 1, nbformat.v4.new_code_cell("print('my scratch cell')"))
    return _text(notebook)


def _malformed() -> str:
    return _text(_solved())[:5000]


SWALLOW_INTERRUPT = """
import time
while True:
    try:
        time.sleep(1)
    except KeyboardInterrupt:
        pass
"""

PTH_FILE = "zz_submission.pth"
WRITE_A_PTH_FILE = f"""
import pathlib, site
for folder in site.getsitepackages():  # a .pth file there would run code in every later Python, the grader's too
    try:
        pathlib.Path(folder, "{PTH_FILE}").write_text("import os")
    except OSError as error:
        print("could not write:", error)
"""

CORPUS: dict[str, Submission] = {
    "solved": Submission(lambda: _text(_solved()), FULL, "graded"),
    "untouched": Submission(lambda: _text(make_submission(ASSIGNMENT, None)), 0, "graded"),
    "mistaken": Submission(lambda: _text(_solved(mistaken=True)), HONEST, "graded"),
    # verdicts faked from inside the student's cells: the re-check undoes the fake and grades the code
    # (the lower verdict stands: in the notebook, an allclose that always agrees also fails the two checks that need
    # it to tell train-mode from eval-mode outputs apart, so this one ends below the honest score)
    "patches-torch": Submission(_append("basic-block", "torch.allclose = lambda *a, **k: True\n"
                                        "torch.equal = lambda *a, **k: True", mistaken=True),
                                HONEST - 2, "tampered", "torch.allclose was replaced"),
    "patches-builtins-numpy": Submission(_append("basic-block", "import builtins, numpy\n"
                                                 "builtins.all = lambda *a: True\n"
                                                 "numpy.allclose = lambda *a, **k: True", mistaken=True),
                                         HONEST, "tampered", "builtins.all was replaced"),
    "patches-checks": Submission(_append("basic-block", "import residual_course.checks.report as report\n"
                                         "report.run_properties = lambda *a, **k: None\n"
                                         "check_basic_block = lambda *a, **k: None", mistaken=True),
                                 HONEST, "tampered", "run_properties was replaced"),
    "swallows-exceptions": Submission(_append("basic-block", "get_ipython().set_custom_exc((BaseException,), "
                                              "lambda *a, **k: None)", mistaken=True),
                                      HONEST, "tampered", "set_custom_exc"),
    "changes-environment": Submission(_append("basic-block", "import os\n"
                                              "os.environ['RESIDUAL_COURSE_DATA'] = '/tmp/fake-data'",
                                              mistaken=True),
                                      HONEST, "tampered", "environment variables were changed"),
    "writes-course-files": Submission(_append("basic-block", WRITE_A_PTH_FILE, mistaken=True), HONEST, "graded"),
    # graded cells edited, deleted or duplicated
    "edits-test-cell": Submission(_edited_test_cell, HONEST, "graded", "was edited"),
    "deletes-test-cell": Submission(_deleted_test_cell, HONEST, "graded", "restored from the released notebook"),
    "duplicates-answer-cell": Submission(_duplicated_answer_cell, FULL, "graded", "appeared more than once"),
    # lost metadata: re-attached when unambiguous, otherwise a person decides
    "colab-round-trip": Submission(lambda: _text(_stripped(keep_ids=True)), FULL, "graded", "re-attached"),
    "colab-round-trip-ambiguous": Submission(_stripped_and_moved, 0, "needs manual grading", "cannot be told apart"),
    # runs that must end without stopping the batch
    "endless-loop": Submission(_append("basic-block", SWALLOW_INTERRUPT), 0, "timeout", "limit for a whole notebook"),
    "out-of-memory": Submission(_append("preact-block", "hog = [torch.ones(2**28) for _ in range(64)]"),
                                FULL, "out of memory", "ran out of memory"),
    "exits-the-kernel": Submission(_append("basic-block", "import os\nos._exit(0)"), 0, "crashed", "kernel died"),
    "huge-output": Submission(_append("basic-block", "print('spam ' * 20_000_000)"), FULL, "graded"),
    "malformed-json": Submission(_malformed, 0, "malformed", "not valid JSON"),
}
