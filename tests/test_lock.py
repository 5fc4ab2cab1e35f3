"""requirements-dev.lock, which `make setup` installs, agrees with pyproject.toml: every requirement of the package
and of its dev extra is pinned at a version it admits, with hashes, and nothing is pinned for a requirement that
pyproject.toml no longer has. Read, never installed: the check costs milliseconds."""

from __future__ import annotations

import re
import tomllib

from notebooks import REPOSITORY
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = REPOSITORY / "requirements-dev.lock"
PROJECT = "residual-course (pyproject.toml)"  # how pip-compile names pyproject.toml in its "# via" lines
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\]+).*(?P<body>(?:\n[ \t]+.*)*)", re.M)


def locked(text: str) -> dict[str, tuple[str, int, set[str]]]:
    """name -> (version, number of hashes, what pulled it in), from pip-compile's output."""
    entries = {}
    for match in ENTRY.finditer(text):
        body = match.group("body")
        via = re.findall(r"#[ \t]+via[ \t]+(\S.*)$|#[ \t]{3,}(\S.*)$", body, re.M)
        parents = {canonicalize_name(name) if name != PROJECT else PROJECT for pair in via for name in pair if name}
        entries[canonicalize_name(match.group("name"))] = (match.group("version"), body.count("--hash=sha256:"),
                                                           parents)
    return entries


def requirements(pyproject: dict) -> list[Requirement]:
    """The package's own requirements and its dev extra's, for this interpreter (markers applied)."""
    project = pyproject["project"]
    listed = [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return [requirement for requirement in listed if requirement.marker is None or requirement.marker.evaluate()]


def disagreements(pyproject: dict, lock_text: str) -> list[str]:
    """Each way the lock and pyproject.toml disagree, as a sentence; none when they agree."""
    entries = locked(lock_text)
    wanted = {canonicalize_name(requirement.name): requirement for requirement in requirements(pyproject)}
    problems = []
    for name, requirement in wanted.items():
        if name not in entries:
            problems.append(f"{requirement} is in pyproject.toml but not in the lock: run `make lock`")
        elif not requirement.specifier.contains(entries[name][0], prereleases=True):
            problems.append(f"the lock pins {name}=={entries[name][0]}, which pyproject.toml's {requirement} "
                            "does not admit: run `make lock`")
    for name, (version, hashes, parents) in entries.items():
        if PROJECT in parents and name not in wanted:
            problems.append(f"the lock pins {name}=={version} for pyproject.toml, which no longer asks for it: "
                            "run `make lock`")
        if not parents & (set(entries) | {PROJECT}):
            problems.append(f"the lock pins {name}=={version} for {sorted(parents)}, none of which it pins")
        if not hashes:
            problems.append(f"the lock pins {name}=={version} without a hash: pip's --require-hashes refuses it")
    return problems


def test_the_lock_pins_every_requirement_of_pyproject_at_an_admitted_version_and_nothing_stale():
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    assert disagreements(pyproject, LOCK.read_text()) == []


def test_a_lock_that_drifted_from_pyproject_is_told_apart_with_sentences():
    pyproject = {"project": {"dependencies": ["numpy>=2.0", "tqdm>=4.60"],
                             "optional-dependencies": {"dev": ["pytest>=8.0"]}}}
    lock = """numpy==1.26.4 \\
    --hash=sha256:aa
    # via residual-course (pyproject.toml)
pyyaml==6.0.2 \\
    --hash=sha256:bb
    # via residual-course (pyproject.toml)
pytest==8.3.0
    # via
    #   residual-course (pyproject.toml)
iniconfig==2.0.0 \\
    --hash=sha256:cc
    # via pluggy
"""
    problems = disagreements(pyproject, lock)
    assert any("tqdm>=4.60 is in pyproject.toml but not in the lock" in line for line in problems)
    assert any("numpy==1.26.4, which pyproject.toml's numpy>=2.0 does not admit" in line for line in problems)
    assert any("pyyaml==6.0.2 for pyproject.toml, which no longer asks for it" in line for line in problems)
    assert any("iniconfig==2.0.0 for ['pluggy'], none of which it pins" in line for line in problems)
    assert any("pytest==8.3.0 without a hash" in line for line in problems)
    assert len(problems) == 5


def test_make_setup_installs_exactly_the_lock_then_the_package_without_resolving_again():
    makefile = (REPOSITORY / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile and "LOCK := requirements-dev.lock" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert "$(STAMP): pyproject.toml $(LOCK)" in makefile, "a changed lock must reinstall"
    assert "--generate-hashes" in makefile and "--output-file $(LOCK) pyproject.toml" in makefile  # `make lock`
