"""The repository address lives in pyproject.toml; the README badges and the Colab install lines follow it."""

import re
import tomllib

import pytest
from notebooks import ASSIGNMENTS, REPOSITORY, notebook_path

REPOSITORY_URL = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
OWNER_AND_NAME = REPOSITORY_URL.removeprefix("https://github.com/")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_readme_has_a_colab_badge_for_every_lesson(assignment):
    readme = (REPOSITORY / "README.md").read_text()
    expected = f"https://colab.research.google.com/github/{OWNER_AND_NAME}/blob/main/lessons/{assignment}/{assignment}.ipynb"
    assert expected in readme


@pytest.mark.parametrize("folder", ["solutions", "lessons"])
def test_every_colab_link_and_install_line_uses_the_one_repository_url(folder):
    readme = (REPOSITORY / "README.md").read_text()
    for text in [readme] + [notebook_path(folder, a).read_text() for a in ASSIGNMENTS]:
        for owner_and_name in re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/", text):
            assert owner_and_name == OWNER_AND_NAME
        for url in re.findall(r"git\+(https://github\.com/[^@\"]+)@", text):
            assert url == REPOSITORY_URL


def test_ci_runs_exactly_the_readme_test_command():
    assert "make test" in (REPOSITORY / "README.md").read_text()
    assert (REPOSITORY / ".ci" / "run").read_text().strip().endswith("make test")


def test_binder_badge_opens_the_lessons_of_this_repository():
    readme = (REPOSITORY / "README.md").read_text()
    assert f"https://mybinder.org/v2/gh/{OWNER_AND_NAME}/main?urlpath=lab/tree/lessons" in readme


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_colab_install_line_pins_the_package_version(assignment):
    version = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["version"]
    text = notebook_path("lessons", assignment).read_text()
    assert f"{REPOSITORY_URL}@v{version}" in text, "the Colab cell must install the course's own release"


def test_every_lesson_part_is_named_by_its_lessons_slug_or_is_a_shared_module_the_readme_names():
    """The layout rule of the README: checks, check tests, fixtures and grading cases are named by a lesson's slug
    (its folder name without the number); the few shared modules are listed in the README's layout table."""
    readme = (REPOSITORY / "README.md").read_text()
    slugs = {assignment.split("_", 1)[1] for assignment in ASSIGNMENTS}
    layers = {
        "residual_course/checks": lambda name: name,
        "tests/fixtures": lambda name: name,
        "tests/cases": lambda name: name,
        "tests": lambda name: name.removeprefix("test_checks_") if name.startswith("test_checks_") else None,
    }
    for folder, key in layers.items():
        names = {key(path.stem) for path in (REPOSITORY / folder).glob("*.py") if path.stem != "__init__"} - {None}
        for name in names - slugs:
            assert f"`{name}`" in readme or f"test_checks_{name}.py" in readme, f"{folder}: {name} is no lesson's slug"
    cases = {path.stem for path in (REPOSITORY / "tests/cases").glob("*.py")} - {"__init__"}
    checks = {path.stem for path in (REPOSITORY / "residual_course/checks").glob("*.py")}
    assert cases == slugs, "every lesson has one grading case, named by its slug"
    assert slugs <= checks, "every lesson has one module of checks, named by its slug"


def test_the_layout_section_names_every_module_of_the_package_and_of_the_grading_driver():
    readme = (REPOSITORY / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    for folder, pattern in (("residual_course", "*.py"), ("autograder/grading", "**/*.py")):
        for path in (REPOSITORY / folder).glob(pattern):
            if path.stem != "__init__":
                assert path.stem in layout, f"the README's layout section does not name {folder}/{path.name}"
