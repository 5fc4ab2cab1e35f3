"""`make collect`: a course platform's zip of submissions becomes submitted/<student>/<assignment>/, safely."""

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from notebooks import REPOSITORY

from autograder.grading.intake.collect import collect, main, safe_id

BIN = Path(sys.executable).parent
A = "05_residual_blocks"
JAN, FEB = (2024, 1, 15, 9, 0, 0), (2024, 2, 15, 9, 0, 0)


def notebook(marker: str, padding: int = 0) -> bytes:
    """A minimal valid notebook whose metadata says which entry it came from."""
    return json.dumps({"cells": [], "metadata": {"marker": marker, "padding": "x" * padding},
                       "nbformat": 4, "nbformat_minor": 5}).encode()


def build_zip(path: Path, entries: list[tuple[str, bytes] | tuple[str, bytes, tuple]]) -> Path:
    """A zip with these (name, data[, date_time]) entries, names written exactly as given."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, *when in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=when[0] if when else JAN), data)
    return path


def marker(root: Path, student: str) -> str:
    """Which zip entry the collected notebook of student came from."""
    return json.loads((root / "submitted" / student / A / f"{A}.ipynb").read_text())["metadata"]["marker"]


def files_under(folder: Path) -> set[str]:
    """Every file below folder, as relative paths."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def reasons(report) -> dict[str, str]:
    """zip entry -> why it was skipped."""
    return dict(report.skipped)


def test_canvas_names_on_time_and_late_give_the_student_folder(tmp_path):
    archive = build_zip(tmp_path / "canvas.zip", [
        ("smithjohn_1234_98765_05_residual_blocks.ipynb", notebook("john")),
        ("doejane_LATE_2345_98766_05_residual_blocks-1.ipynb", notebook("jane")),
    ])
    report = collect(archive, A, tmp_path / "root")
    assert report.pattern == "auto (canvas)"
    assert (marker(tmp_path / "root", "smithjohn"), marker(tmp_path / "root", "doejane")) == ("john", "jane")
    assert report.skipped == []


def test_moodle_folders_give_the_student_folder_renamed_to_a_safe_name(tmp_path):
    archive = build_zip(tmp_path / "moodle.zip", [
        ("Jane Doe_123456_assignsubmission_file_/05_residual_blocks.ipynb", notebook("jane")),
        ("José Álvarez_123457_assignsubmission_file_/my work.ipynb", notebook("jose")),
        ("Jane Doe_123456_assignsubmission_onlinetext_/onlinetext.html", b"<p>see file</p>"),
    ])
    report = collect(archive, A, tmp_path / "root")
    assert report.pattern == "auto (moodle)"
    assert report.collected.keys() == {"Jane_Doe", "Jose_Alvarez"}
    assert report.renamed == {"Jane Doe": "Jane_Doe", "José Álvarez": "Jose_Alvarez"}
    assert marker(tmp_path / "root", "Jose_Alvarez") == "jose"
    assert reasons(report) == {"Jane Doe_123456_assignsubmission_onlinetext_/onlinetext.html": "not a notebook"}


def test_plain_layout_takes_the_file_or_the_folder_name(tmp_path):
    archive = build_zip(tmp_path / "plain.zip", [("alice.ipynb", notebook("alice")),
                                                 ("bob/work/04.ipynb", notebook("bob"))])
    report = collect(archive, A, tmp_path / "root")
    assert report.pattern == "auto (plain)"
    assert (marker(tmp_path / "root", "alice"), marker(tmp_path / "root", "bob")) == ("alice", "bob")


def test_a_preset_or_a_regex_can_be_named_and_entries_that_do_not_match_are_reported(tmp_path):
    archive = build_zip(tmp_path / "hw.zip", [("hw4-carol.ipynb", notebook("carol")),
                                              ("smithjohn_1_2_x.ipynb", notebook("john"))])
    report = collect(archive, A, tmp_path / "root", pattern=r"hw4-(?P<student>\w+)\.ipynb")
    assert report.collected == {"carol": "hw4-carol.ipynb"}
    assert reasons(report) == {"smithjohn_1_2_x.ipynb": r"does not match the pattern hw4-(?P<student>\w+)\.ipynb"}
    report = collect(archive, A, tmp_path / "other", pattern="canvas")
    assert report.collected == {"smithjohn": "smithjohn_1_2_x.ipynb"}


@pytest.mark.parametrize(("pattern", "sentence"), [("(unclosed", "neither a preset"),
                                                   (r"(?P<name>\w+)\.ipynb", "no named group (?P<student>...)")])
def test_a_bad_pattern_is_refused_with_a_sentence(tmp_path, pattern, sentence):
    archive = build_zip(tmp_path / "a.zip", [("alice.ipynb", notebook("alice"))])
    with pytest.raises(ValueError, match=sentence.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        collect(archive, A, tmp_path / "root", pattern=pattern)
    assert not (tmp_path / "root").exists()


def test_the_command_line_says_what_is_wrong_with_a_file_that_is_no_zip(tmp_path, capsys):
    (tmp_path / "grades.zip").write_text("not a zip")
    assert main([str(tmp_path / "grades.zip"), A, "--root", str(tmp_path / "root")]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.zip"), A, "--root", str(tmp_path / "root")]) == 2
    assert main([str(tmp_path / "grades.zip"), "../etc", "--root", str(tmp_path / "root")]) == 2
    assert "no assignment '../etc'" in capsys.readouterr().err


def test_a_misspelt_assignment_is_refused_and_nothing_is_collected(tmp_path, capsys):
    archive = build_zip(tmp_path / "canvas.zip", [("smithjohn_1234_98765_hw.ipynb", notebook("john"))])
    assert main([str(archive), "04_residual_block", "--root", str(tmp_path / "root")]) == 2
    assert "no assignment '04_residual_block': choose one of" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_zip_that_yields_nothing_exits_non_zero_with_a_sentence(tmp_path, capsys):
    archive = build_zip(tmp_path / "empty.zip", [("readme.txt", b"hello")])
    assert main([str(archive), A, "--root", str(tmp_path / "root")]) == 1
    assert "nothing was collected" in capsys.readouterr().err


def test_each_submission_keeps_the_time_the_platform_received_it(tmp_path):
    archive = build_zip(tmp_path / "canvas.zip", [("smithjohn_1234_98765_hw.ipynb", notebook("john"))])
    collect(archive, A, tmp_path / "root")
    stamp = tmp_path / "root" / "submitted" / "smithjohn" / A / "timestamp.txt"
    assert stamp.read_text().strip() == "2024-01-15 09:00:00"


def test_path_traversal_absolute_paths_and_symlinks_are_skipped_and_nothing_lands_outside(tmp_path):
    link = zipfile.ZipInfo("mallory.ipynb", date_time=JAN)
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = build_zip(tmp_path / "hostile.zip", [
        ("../evil.ipynb", notebook("evil")),
        ("alice/../../evil2.ipynb", notebook("evil")),
        ("..\\evil3.ipynb", notebook("evil")),
        ("/tmp/evil4.ipynb", notebook("evil")),
        ("C:/evil5.ipynb", notebook("evil")),
        ("alice.ipynb", notebook("alice")),
    ])
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(link, "/etc/passwd")
    root = tmp_path / "course" / "root"
    report = collect(archive, A, root)
    assert report.collected == {"alice": "alice.ipynb"}
    assert reasons(report) == {
        "../evil.ipynb": "path leaves the zip ('..')",
        "alice/../../evil2.ipynb": "path leaves the zip ('..')",
        "..\\evil3.ipynb": "path leaves the zip ('..')",
        "/tmp/evil4.ipynb": "absolute path",
        "C:/evil5.ipynb": "absolute path",
        "mallory.ipynb": "symbolic link, not a file",
    }
    assert files_under(tmp_path) == {"hostile.zip", f"course/root/submitted/alice/{A}/{A}.ipynb",
                                     f"course/root/submitted/alice/{A}/timestamp.txt"}
    assert not Path("/tmp/evil4.ipynb").exists()


def test_student_ids_become_safe_folder_names():
    assert safe_id("smithjohn") == "smithjohn"
    assert safe_id("Ann O'Neil") == "Ann_O_Neil"
    assert safe_id("..").startswith("student_")
    assert safe_id("-rf /") == "rf"
    assert safe_id("李雷").startswith("student_") and safe_id("李雷") != safe_id("韩梅梅")
    assert len(safe_id("a" * 300)) == 64


def test_two_names_that_become_one_folder_are_both_skipped_not_merged(tmp_path):
    archive = build_zip(tmp_path / "a.zip", [("a b.ipynb", notebook("space")), ("a_b.ipynb", notebook("under")),
                                             ("carol.ipynb", notebook("carol"))])
    report = collect(archive, A, tmp_path / "root")
    assert report.collected.keys() == {"carol"}
    assert all("share the folder name a_b" in reasons(report)[name] for name in ("a b.ipynb", "a_b.ipynb"))


def test_notebooks_over_the_size_cap_are_skipped(tmp_path):
    archive = build_zip(tmp_path / "a.zip", [("alice.ipynb", notebook("alice")),
                                             ("bob.ipynb", notebook("bob", padding=2 * 2**20))])
    report = collect(archive, A, tmp_path / "root", max_bytes=2**20)
    assert report.collected.keys() == {"alice"}
    assert reasons(report) == {"bob.ipynb": "larger than 1 MB"}
    assert not (tmp_path / "root" / "submitted" / "bob").exists()


def test_macos_metadata_hidden_files_and_non_notebooks_are_skipped(tmp_path):
    archive = build_zip(tmp_path / "a.zip", [
        ("__MACOSX/alice/._hw.ipynb", b"\x00\x05\x16\x07"),
        ("alice/.ipynb_checkpoints/hw-checkpoint.ipynb", notebook("checkpoint")),
        ("alice/.DS_Store", b"\x00"),
        ("alice/notes.txt", b"notes"),
        ("alice/hw.ipynb", notebook("alice")),
        ("bob.ipynb", b"{not json"),
    ])
    report = collect(archive, A, tmp_path / "root")
    assert marker(tmp_path / "root", "alice") == "alice"
    skipped = reasons(report)
    assert skipped.pop("bob.ipynb").startswith("not a valid notebook")
    assert skipped == {"__MACOSX/alice/._hw.ipynb": "macOS metadata",
                       "alice/.ipynb_checkpoints/hw-checkpoint.ipynb": "hidden file",
                       "alice/.DS_Store": "hidden file", "alice/notes.txt": "not a notebook"}


@pytest.mark.parametrize("newest_first", [True, False])
def test_of_two_notebooks_of_one_student_the_newest_is_kept_and_the_other_reported(tmp_path, newest_first):
    entries = [("alice/final.ipynb", notebook("new"), FEB), ("alice/draft.ipynb", notebook("old"), JAN)]
    report = collect(build_zip(tmp_path / "a.zip", entries if newest_first else entries[::-1]), A, tmp_path / "root")
    assert marker(tmp_path / "root", "alice") == "new"
    assert reasons(report) == {"alice/draft.ipynb": "older notebook of alice (newer: alice/final.ipynb)"}


def test_an_unreadable_entry_is_reported_and_the_older_notebook_is_kept(tmp_path):
    archive = build_zip(tmp_path / "a.zip", [("alice/final.ipynb", notebook("CORRUPTED"), FEB),
                                             ("alice/draft.ipynb", notebook("old"), JAN)])
    archive.write_bytes(archive.read_bytes().replace(b"CORRUPTED", b"corrupted"))  # stored data, CRC now wrong
    report = collect(archive, A, tmp_path / "root")
    assert marker(tmp_path / "root", "alice") == "old"
    assert reasons(report)["alice/final.ipynb"].startswith("cannot be read from the zip (Bad CRC-32")


def test_an_existing_submission_is_kept_unless_forced(tmp_path):
    root = tmp_path / "root"
    collect(build_zip(tmp_path / "first.zip", [("alice.ipynb", notebook("first"))]), A, root)
    again = collect(tmp_path / "first.zip", A, root)
    assert reasons(again) == {"alice.ipynb": "already collected, identical"}
    second = build_zip(tmp_path / "second.zip", [("alice.ipynb", notebook("second"))])
    report = collect(second, A, root)
    assert report.collected == {} and "exists: FORCE=1 replaces it" in reasons(report)["alice.ipynb"]
    assert marker(root, "alice") == "first"
    assert collect(second, A, root, force=True).collected == {"alice": "alice.ipynb"}
    assert marker(root, "alice") == "second"
    assert files_under(root) == {f"submitted/alice/{A}/{A}.ipynb", f"submitted/alice/{A}/timestamp.txt"}


def test_make_collect_unpacks_a_canvas_zip_and_prints_the_summary(tmp_path):
    archive = build_zip(tmp_path / "submissions.zip", [("smithjohn_1234_98765_hw.ipynb", notebook("john")),
                                                       ("readme.txt", b"hello")])
    done = subprocess.run(["make", "--no-print-directory", "collect", f"VENV={BIN.parent}", f"A={A}",
                           f"ZIP={archive}", "PATTERN=canvas"], cwd=REPOSITORY, capture_output=True, text=True,
                          env={**os.environ, "GRADING_ROOT": str(tmp_path / "root")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker(tmp_path / "root", "smithjohn") == "john"
    assert "readme.txt: not a notebook" in done.stdout and "1 collected, 1 skipped" in done.stdout
