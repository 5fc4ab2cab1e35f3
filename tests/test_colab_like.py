"""The Colab path: a fresh environment with only what Colab preinstalls, plus the course package built from this
checkout, runs every lesson's setup and check cells with no other install (no nbgrader, no test tools)."""

import shutil
import subprocess
import sys

import nbformat
import pytest
from cases import all_cases
from notebooks import REPOSITORY, error_of, nbgrader_role, text_of
from test_autograde import make_submission

from autograder.grading.run_notebook import execute_notebook

# What Google Colab ships (and the course relies on); torch/torchvision pinned to the versions on this machine.
COLAB_PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "numpy", "matplotlib", "ipywidgets", "tqdm", "ipykernel"]
NOT_IN_COLAB = ["nbgrader", "pytest", "yaml", "nbclient"]


def run(*args: object, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory) -> dict[str, str]:
    """A venv with Colab's packages and the wheel of this checkout, registered as the kernel 'colab-like'."""
    root = tmp_path_factory.mktemp("colab")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", *COLAB_PACKAGES)
    wheels = root / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, REPOSITORY)
    (wheel,) = wheels.glob("residual_course-*.whl")
    run(python, "-m", "pip", "install", "--quiet", wheel)  # its dependencies are all satisfied already
    run(python, "-m", "ipykernel", "install", "--prefix", root / "jupyter", "--name", "colab-like")
    shutil.rmtree(root / "wheels")
    return {"python": str(python), "jupyter_path": str(root / "jupyter" / "share" / "jupyter")}


def test_colab_environment_has_no_course_tooling(colab_kernel):
    for module in NOT_IN_COLAB:
        found = subprocess.run([colab_kernel["python"], "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} should not be needed, nor installed, in the Colab-like environment"


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.assignment)
def test_solved_lesson_runs_its_checks_in_the_colab_like_environment(colab_kernel, case, tmp_path):
    notebook = make_submission(case.assignment, ())
    env = {"JUPYTER_PATH": colab_kernel["jupyter_path"], "RESIDUAL_COURSE_FAST": "1"}
    execute_notebook(notebook, tmp_path, 300, env, kernel_name="colab-like")
    checks = [cell for cell in notebook.cells if nbgrader_role(cell) == "test"]
    assert checks and not any(error_of(cell) for cell in checks)
    assert all("PASS" in text_of(cell) and "FAIL" not in text_of(cell) for cell in checks if "check_" in cell.source)
    assert nbformat.validate(notebook) is None
