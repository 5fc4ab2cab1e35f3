"""The Colab path: a fresh environment at Colab's own package versions (tests/colab_versions.txt, ipywidgets 7.7
among them), where installing the course package built from this checkout changes nothing Colab already has, then
runs every lesson's setup and check cells, and shows and drives every explorer widget, with no other install (no
nbgrader, no test tools)."""

import inspect
import json
import re
import shutil
import subprocess
import sys

import explorers
import nbformat
import pytest
from cases import all_cases
from notebooks import REPOSITORY, error_of, nbgrader_role, text_of
from packaging.utils import canonicalize_name
from test_autograde import make_submission

from autograder.grading.run_notebook import execute_notebook
from residual_course.widgets import EXPLORERS

COLAB_VERSIONS = REPOSITORY / "tests" / "colab_versions.txt"
# The dev extra's tools, which the lessons must not need (Colab's own pyyaml and nbclient are in the environment).
NOT_IN_COLAB = ["nbgrader", "pytest", "playwright", "psycopg", "latex2mathml"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def run(*args: object, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def colab_pins() -> dict[str, str]:
    """package -> version, as tests/colab_versions.txt pins them."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", COLAB_VERSIONS.read_text(), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def installed(python: str) -> dict[str, str]:
    """package -> version of everything installed in that environment."""
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json").stdout)
    return {canonicalize_name(package["name"]): package["version"] for package in listed}


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory) -> dict:
    """A venv at Colab's versions, the wheel of this checkout installed the way a lesson's first cell installs it,
    registered as the kernel 'colab-like'; with what pip planned for that install, and the packages before and
    after it."""
    root = tmp_path_factory.mktemp("colab")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--quiet", "-r", COLAB_VERSIONS)
    wheels = root / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, REPOSITORY)
    (wheel,) = wheels.glob("residual_course-*.whl")
    before = installed(python)
    run(python, "-m", "pip", "install", "--quiet", "--dry-run", "--report", root / "plan.json", wheel)
    planned = [canonicalize_name(item["metadata"]["name"])
               for item in json.loads((root / "plan.json").read_text())["install"]]
    run(python, "-m", "pip", "install", "--quiet", wheel)
    after = installed(python)
    run(python, "-m", "ipykernel", "install", "--prefix", root / "jupyter", "--name", "colab-like")
    shutil.rmtree(wheels)
    return {"python": python, "jupyter_path": str(root / "jupyter" / "share" / "jupyter"), "planned": planned,
            "before": before, "after": after}


def run_in_colab_kernel(colab_kernel: dict, notebook: nbformat.NotebookNode, folder) -> nbformat.NotebookNode:
    """Execute the notebook in the Colab-like kernel, in fast mode."""
    env = {"JUPYTER_PATH": colab_kernel["jupyter_path"], "RESIDUAL_COURSE_FAST": "1"}
    return execute_notebook(notebook, folder, 300, env, kernel_name="colab-like")


def test_the_environment_has_colabs_versions(colab_kernel):
    before = colab_kernel["before"]
    assert {name: before.get(name) for name in colab_pins()} == colab_pins()
    assert before["ipywidgets"].startswith("7.7.")


def test_installing_the_course_changes_no_package_colab_already_has(colab_kernel):
    """pip plans to install the course alone (so Colab asks for no restart), and does."""
    assert colab_kernel["planned"] == ["residual-course"], "every floor in pyproject.toml must admit Colab's versions"
    after = dict(colab_kernel["after"])
    assert after.pop("residual-course")
    assert after == colab_kernel["before"]


def test_colab_environment_has_no_course_tooling(colab_kernel):
    for module in NOT_IN_COLAB:
        found = subprocess.run([colab_kernel["python"], "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} should not be needed, nor installed, in the Colab-like environment"


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.assignment)
def test_solved_lesson_runs_its_checks_and_shows_its_widgets_in_the_colab_like_environment(colab_kernel, case,
                                                                                            tmp_path):
    notebook = run_in_colab_kernel(colab_kernel, make_submission(case.assignment, ()), tmp_path)
    checks = [cell for cell in notebook.cells if nbgrader_role(cell) == "test"]
    assert checks and not any(error_of(cell) for cell in checks)
    assert all("PASS" in text_of(cell) and "FAIL" not in text_of(cell) for cell in checks if "check_" in cell.source)
    for cell in notebook.cells:
        if cell.cell_type == "code" and any(f"{cls.__name__}(" in cell.source for cls in EXPLORERS):
            assert any(WIDGET_VIEW in output.get("data", {}) for output in cell.outputs), \
                f"this cell built an explorer but shows no widget under ipywidgets 7.7:\n{cell.source}\n{text_of(cell)}"
    assert nbformat.validate(notebook) is None


EVERY_EXPLORER = """
import json

import ipywidgets
import torch
from IPython.display import display

from residual_course.widgets import EXPLORERS

generator = torch.Generator().manual_seed(0)
images, labels = torch.rand(32, 1, 28, 28, generator=generator), torch.randint(0, 10, (32,), generator=generator)
for explorer_class in EXPLORERS:
    explorer = explorer_class.from_batch(images, labels)
    display(explorer)
    print(json.dumps({"explorer": explorer_class.__name__, "model_id": explorer.widget.model_id,
                      "changed": drive(explorer), "ipywidgets": ipywidgets.__version__}))
"""


def test_every_explorer_of_the_course_is_shown_and_redraws_under_colabs_ipywidgets(colab_kernel, tmp_path):
    """The kernel finds the explorers in the package (residual_course.widgets.EXPLORERS), shows each and moves each of
    its controls one notch (tests/explorers.py): every move must change the image."""
    source = inspect.getsource(explorers) + EVERY_EXPLORER
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    (cell,) = run_in_colab_kernel(colab_kernel, notebook, tmp_path).cells
    reports = [json.loads(line) for line in text_of(cell).splitlines() if line.startswith("{")]
    assert [report["explorer"] for report in reports] == [cls.__name__ for cls in EXPLORERS]
    shown = [output.data[WIDGET_VIEW]["model_id"] for output in cell.outputs if WIDGET_VIEW in output.get("data", {})]
    assert shown == [report["model_id"] for report in reports]
    for report in reports:
        assert report["ipywidgets"].startswith("7.7.")
        assert report["changed"] and all(report["changed"].values()), f"controls that left the image alone: {report}"
