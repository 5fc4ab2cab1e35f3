"""The grading pipeline's parts, one at a time: preflight, isolation, the fresh-process re-check, feedback."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
import torch
from hostile import CORPUS, _stripped, _text
from notebooks import REPOSITORY, notebook_path

from autograder.grading import isolate
from autograder.grading.batch import Settings, supervise, worker_environment
from autograder.grading.feedback import HideHiddenTests, hide_tests
from autograder.grading.preflight import MALFORMED, MANUAL, OK, REPAIRED, preflight

RELEASE = nbformat.read(notebook_path("lessons", "04_residual_blocks"), as_version=4)
RECHECK = REPOSITORY / "autograder" / "grading" / "recheck.py"


def check(tmp_path: Path, text: str):
    path = tmp_path / "submission.ipynb"
    path.write_text(text)
    return preflight(path, RELEASE)


def grade_ids(notebook) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if c.metadata.get("nbgrader")]


# ---------------------------------------------------------------- preflight

def test_an_intact_submission_passes_untouched(tmp_path):
    verdict = check(tmp_path, CORPUS["solved"].build())
    assert (verdict.status, verdict.reasons) == (OK, [])


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"cells": [', "not valid JSON (line 1, column 12"),
    ('{"cells": 3}', "not a valid notebook"),
    ("\udcff", "not valid JSON"),
])
def test_broken_files_are_malformed_with_a_sentence(tmp_path, text, fragment):
    path = tmp_path / "submission.ipynb"
    path.write_bytes(text.encode(errors="surrogateescape"))
    verdict = preflight(path, RELEASE)
    assert verdict.status == MALFORMED and verdict.notebook is None
    assert fragment in verdict.reason or "not text" in verdict.reason


def test_metadata_lost_in_a_round_trip_is_reattached_by_cell_id(tmp_path):
    verdict = check(tmp_path, _text(_stripped(keep_ids=True)))
    assert verdict.status == REPAIRED
    assert grade_ids(verdict.notebook) == grade_ids(RELEASE)


def test_an_answer_cell_is_found_by_position_when_ids_are_lost_too(tmp_path):
    verdict = check(tmp_path, _text(_stripped(keep_ids=False)))
    assert verdict.status == REPAIRED
    answer = next(c for c in verdict.notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "basic-block")
    assert "class BasicBlock" in answer.source and "raise NotImplementedError" not in answer.source


def test_an_ambiguous_answer_cell_goes_to_a_person(tmp_path):
    verdict = check(tmp_path, CORPUS["colab-round-trip-ambiguous"].build())
    assert verdict.status == MANUAL and "'basic-block'" in verdict.reason


def test_a_duplicated_answer_cell_is_graded_on_its_last_copy(tmp_path):
    verdict = check(tmp_path, CORPUS["duplicates-answer-cell"].build())
    copies = [c for c in verdict.notebook.cells if "class BasicBlock" in c.source]
    assert [bool(c.metadata.get("nbgrader")) for c in copies] == [False, True]
    assert grade_ids(verdict.notebook) == grade_ids(RELEASE)


def test_a_deleted_test_cell_comes_back_in_its_place(tmp_path):
    verdict = check(tmp_path, CORPUS["deletes-test-cell"].build())
    ids = grade_ids(verdict.notebook)
    assert ids == grade_ids(RELEASE)
    assert ids.index("basic-block-relu-after-add") == ids.index("basic-block-identity") + 1


def test_an_edited_test_cell_is_reported(tmp_path):
    verdict = check(tmp_path, CORPUS["edits-test-cell"].build())
    assert verdict.status == REPAIRED and "'basic-block-relu-after-add' was edited" in verdict.reason


# ---------------------------------------------------------------- feedback

SOURCE = "check(x)\n### BEGIN HIDDEN TESTS\nassert secret(x) == 42\n### END HIDDEN TESTS\nprint('after')\n"


def test_hidden_tests_are_replaced_by_a_placeholder():
    shown = hide_tests(SOURCE)
    assert "secret" not in shown
    assert shown.startswith("check(x)\n# (hidden tests") and shown.endswith("print('after')\n")


def test_feedback_keeps_the_error_message_but_not_the_quoted_code():
    cell = nbformat.v4.new_code_cell(SOURCE, outputs=[nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="the answer is 42", traceback=["----> 3 assert secret(x) == 42"])])
    shown, _ = HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert shown.outputs[0].traceback == ["AssertionError: the answer is 42"]
    assert "secret" not in shown.source


# ---------------------------------------------------------------- the fresh-process re-check

def recheck(*cells: tuple[str, str]) -> dict:
    """Run recheck.py (not isolated: the harness itself is under test) on cells given as (kind, source)."""
    job = {"nonce": "N0NCE", "cells": [{"kind": kind, "source": source, "grade_id": f"cell-{index}"}
                                       for index, (kind, source) in enumerate(cells)]}
    done = subprocess.run([sys.executable, str(RECHECK)], input=json.dumps(job), capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, timeout=300)
    line = next(line for line in done.stdout.splitlines() if line.startswith("N0NCE"))
    return json.loads(line.removeprefix("N0NCE"))


IMPORTS = ("code", "import torch\nfrom residual_course.checks.report import run_properties")
FAILING_TEST = ("test", "assert torch.allclose(torch.zeros(1), torch.ones(1)), 'zero is not one'")


def test_an_honest_notebook_is_not_flagged():
    result = recheck(IMPORTS, ("solution", "x = 1"), ("test", "assert x == 1"), FAILING_TEST)
    assert result == {"verdicts": {"cell-2": None, "cell-3": "AssertionError: zero is not one"}, "tampering": []}


@pytest.mark.parametrize(("patch", "named"), [
    ("torch.allclose = lambda *a, **k: True", "torch.allclose was replaced"),
    ("import builtins\nbuiltins.AssertionError = Warning", "builtins.AssertionError was replaced"),
    ("get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)", "set_custom_exc"),
    ("import os\nos.environ['RESIDUAL_COURSE_FAST'] = 'no'", "environment variables were changed"),
    ("run_properties = print", "`run_properties` from the lesson was redefined"),
    ("torch.Tensor.__bool__ = lambda self: True", "torch.Tensor.__bool__ was replaced"),
])
def test_tampering_is_undone_before_the_tests_and_named(patch, named):
    result = recheck(IMPORTS, ("solution", patch), FAILING_TEST)
    assert result["verdicts"]["cell-2"] == "AssertionError: zero is not one"
    assert any(named in entry and "cell 'cell-1'" in entry for entry in result["tampering"]), result


# ---------------------------------------------------------------- isolation

needs_namespaces = pytest.mark.skipif(not isolate.namespaces_available(),
                                      reason="network, mount and PID namespaces need root on Linux")
PROBE = """
import json, os, socket, sys
seen = {"cwd": os.getcwd(), "env": sorted(os.environ), "pid": os.getpid(), "parent": os.getppid()}
seen["hidden"] = sorted(os.listdir(sys.argv[1]))
seen["hidden_file"] = open(sys.argv[2]).read() if os.path.exists(sys.argv[2]) else "absent"
seen["kept"] = open(sys.argv[3]).read()
try:
    open(sys.argv[4], "a").write("changed")
    seen["outside"] = "written"
except OSError as error:
    seen["outside"] = error.strerror
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    seen["network"] = "reachable"
except OSError as error:
    seen["network"] = str(error)
try:
    bytearray(3 * 1024**3)
    seen["memory"] = "allocated 3 GiB"
except MemoryError:
    seen["memory"] = "MemoryError"
print(json.dumps(seen))
"""


@needs_namespaces
def test_an_isolated_process_sees_no_network_no_secrets_and_only_its_own_folder(tmp_path, monkeypatch):
    secret_dir, kept_dir = tmp_path / "solutions", tmp_path / "solutions" / "runtime"
    kept_dir.mkdir(parents=True)
    (secret_dir / "answers.ipynb").write_text("the answers")
    (kept_dir / "connection.json").write_text("kept")
    gradebook = tmp_path / "gradebook.db"
    gradebook.write_text("grades")
    monkeypatch.setenv("NBGRADER_DB_URL", f"sqlite:///{gradebook}")
    outside = Path(tempfile.mkstemp(dir=sys.prefix, prefix="isolation-probe-")[1])  # not under /tmp: really shared
    command = isolate.isolated_command(
        [sys.executable, "-c", PROBE, str(secret_dir), str(gradebook), str(kept_dir / "connection.json"), str(outside)],
        hide=[secret_dir, gradebook], keep=[kept_dir], memory_gb=1)
    try:
        seen = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        assert seen["outside"] == "Read-only file system" and outside.read_text() == ""
    finally:
        outside.unlink()
    assert seen["hidden"] == ["runtime"] and seen["hidden_file"] in ("", "absent") and seen["kept"] == "kept"
    assert "unreachable" in seen["network"]
    assert seen["memory"] == "MemoryError"
    assert seen["parent"] == 0  # alone in its PID namespace: it cannot signal the grader
    assert "NBGRADER_DB_URL" not in seen["env"] and "GRADING_ROOT" not in seen["env"]
    assert seen["cwd"].startswith("/tmp/")


def test_each_parallel_worker_gets_its_own_gpu_and_its_share_of_the_cores(tmp_path):
    settings = Settings("04_residual_blocks", tmp_path, "sqlite://", jobs=5, gpus=3)
    devices = [worker_environment(settings, worker)["CUDA_VISIBLE_DEVICES"] for worker in range(5)]
    assert devices == ["0", "1", "2", "0", "1"]
    if "OMP_NUM_THREADS" not in os.environ:
        assert worker_environment(settings, 0)["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 5))
    cpu_only = Settings("04_residual_blocks", tmp_path, "sqlite://", jobs=2, gpus=0)
    assert worker_environment(cpu_only, 1).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: nothing to refuse")
def test_require_gpu_refuses_to_grade_on_the_cpu(tmp_path):
    folder = tmp_path / "submitted" / "ann" / "04_residual_blocks"
    folder.mkdir(parents=True)
    (folder / "04_residual_blocks.ipynb").write_text(CORPUS["solved"].build())
    done = subprocess.run(["make", "--no-print-directory", "autograde", "A=04_residual_blocks", "REQUIRE_GPU=1",
                           f"VENV={Path(sys.executable).parent.parent}"], cwd=REPOSITORY, capture_output=True,
                          text=True, env={**os.environ, "GRADING_ROOT": str(tmp_path)})
    assert done.returncode != 0 and "sees no CUDA GPU" in done.stdout
    assert not (tmp_path / "autograded").exists() and not (tmp_path / "report.csv").exists()


def test_a_flood_of_output_keeps_its_last_line():
    flood = "import os\nfor _ in range(3000):\n    os.write(1, b'spam ' * 200 + b'\\n')\nprint('the verdict')"
    process = subprocess.Popen([sys.executable, "-c", flood], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    status, _, log = supervise(process, wall_seconds=60, memory_gb=0)
    assert status == "graded" and log.rstrip().endswith("the verdict") and len(log) < 1_200_000
