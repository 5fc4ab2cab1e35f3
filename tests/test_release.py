"""lessons/ is exactly what nbgrader generates from solutions/: nobody edits it by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from notebooks import ASSIGNMENTS, REPOSITORY, notebook_path

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """Run `nbgrader generate_assignment` for every lesson into a scratch release folder and gradebook."""
    root = tmp_path_factory.mktemp("grading")
    env = {**os.environ, "GRADING_ROOT": str(root), "RELEASE_DIR": str(root / "release"),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for assignment in ASSIGNMENTS:
        subprocess.run([BIN / "nbgrader", "generate_assignment", assignment, "--force"], cwd=REPOSITORY / "autograder",
                       env=env, check=True, capture_output=True)
    return root / "release"


def test_every_solution_has_a_lesson():
    lessons = sorted(p.name for p in (REPOSITORY / "lessons").iterdir() if p.is_dir())
    assert lessons == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_lesson_matches_what_nbgrader_generates(regenerated, assignment):
    committed = json.loads(notebook_path("lessons", assignment).read_text())
    generated = json.loads((regenerated / assignment / f"{assignment}.ipynb").read_text())
    assert committed == generated, f"lessons/{assignment} drifted from solutions/: run `make release`"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_lessons_hide_solutions_and_hidden_tests(assignment):
    text = notebook_path("lessons", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("folder", ["solutions", "lessons"])
def test_notebooks_are_committed_without_outputs(folder):
    for assignment in ASSIGNMENTS:
        notebook = json.loads(notebook_path(folder, assignment).read_text())
        for cell in notebook["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), f"{folder}/{assignment} has outputs"


def named_property_keys(source: str) -> list[tuple[str, list[str]]]:
    """Every `check_<name>(subject, ..., only=<literal>)` call of a notebook cell: (name, keys). IPython's magics
    and shell lines become `pass`, so the cell parses as Python."""
    import ast

    lines = source.splitlines()
    code = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in lines)
    calls = []
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")):
            continue
        only = next((k.value for k in node.keywords if k.arg == "only"), None)
        if only is not None:
            keys = ast.literal_eval(only)
            calls.append((node.func.id, [keys] if isinstance(keys, str) else list(keys)))
    return calls


def declared_keys(check_name: str) -> list[str]:
    """The keys the check of that name declares (its properties, declared once each beside their tests)."""
    import importlib
    import pkgutil

    import residual_course.checks as checks
    from residual_course.checks.report import Check

    for info in pkgutil.iter_modules(checks.__path__):
        check = getattr(importlib.import_module(f"residual_course.checks.{info.name}"), check_name, None)
        if check is not None:
            assert isinstance(check, Check), f"{check_name} is called with only= but declares no property keys"
            return check.keys()
    raise AssertionError(f"no check named {check_name} in residual_course.checks")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_property_key_a_solution_selects_is_declared_by_its_check(assignment):
    """A grade cell selects properties by key (`only=[...]`): a renamed key must fail here, not zero that cell
    for every student at grading time."""
    notebook = json.loads(notebook_path("solutions", assignment).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        for name, keys in named_property_keys("".join(cell["source"])):
            unknown = set(keys) - set(declared_keys(name))
            assert not unknown, f"{assignment}: {name}(only=...) names {sorted(unknown)}, which {name} does not declare"


def test_the_key_contract_sees_the_grade_cells_and_a_renamed_key():
    """The test above reads every only= of the course (it cannot pass by finding none) and catches a wrong key."""
    cells = [cell for assignment in ASSIGNMENTS
             for cell in json.loads(notebook_path("solutions", assignment).read_text())["cells"]]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    calls = [call for source in sources for call in named_property_keys(source)]
    assert len(calls) >= 50
    (name, keys), = named_property_keys('check_basic_block(BasicBlock, only=["identity", "relu before add"])')
    assert set(keys) - set(declared_keys(name)) == {"relu before add"}
