"""conda/Binder and the Makefile install one and the same dependency set: the package's, from pyproject.toml (the
Makefile its pinned form, requirements-dev.lock, which tests/test_lock.py holds to pyproject.toml)."""

import re
import tomllib

import yaml
from notebooks import REPOSITORY

PYPROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())


def test_environment_yml_installs_the_package_with_the_makefiles_extra():
    environment = yaml.safe_load((REPOSITORY / "environment.yml").read_text())
    assert environment["name"] == PYPROJECT["project"]["name"]
    pip_lists = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    assert pip_lists == [['-e ".[dev]"']] or pip_lists == [["-e .[dev]"]]
    conda_packages = [entry for entry in environment["dependencies"] if isinstance(entry, str)]
    assert {re.split(r"[=<>]", name)[0] for name in conda_packages} == {"python", "pip"}, "no second dependency list"


def test_makefile_installs_the_same_extra():
    makefile = (REPOSITORY / "Makefile").read_text()
    assert "--extra dev --generate-hashes" in makefile, "the lock is compiled from the dev extra"
    assert 'pip install --quiet -e ".[dev]"' in makefile, "where the lock does not apply, the extra itself"
    assert set(PYPROJECT["project"]["optional-dependencies"]) == {"dev"}
