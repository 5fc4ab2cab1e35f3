"""Unpack a course platform's submissions zip into submitted/<student>/<assignment>/<assignment>.ipynb, safely."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import sys
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from autograder.grading.intake.lms_ids import PLATFORMS, LmsId, record_ids
from autograder.grading.limits import MAX_SUBMISSION_MB

REPOSITORY = Path(__file__).resolve().parents[3]

# Each preset is a regex matched against the whole path inside the zip; its `student` group names the student, and
# `lms_id` and `lms_file_id` who the student is on the platform (kept in lms_ids.csv for `make grades LMS=...`).
PRESETS = {
    # Canvas "Download submissions": <student>_<userid>_<attachmentid>_<original name>, late <student>_LATE_<userid>_...
    "canvas": r"(?P<student>[^_/]+)_(?:LATE_)?(?P<lms_id>\d+)_(?P<lms_file_id>\d+)_[^/]*\.ipynb",
    # Moodle "Download all submissions": <Full Name>_<participant id>_assignsubmission_file_/<file>
    "moodle": r"(?:[^/]+/)*(?P<student>[^/]+?)_(?P<lms_id>\d+)_assignsubmission_file_/(?:[^/]+/)*[^/]+\.ipynb",
    # <student>.ipynb or <student>/<anything>.ipynb at the top of the zip
    "plain": r"(?P<student>[^/]+?)(?:/(?:[^/]+/)*[^/]+)?\.ipynb",
}
AUTO = "auto"  # the first preset, in the order above, that matches any notebook of the zip
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Report:
    """What collect() did: students collected, entries skipped with the reason, student ids renamed."""

    pattern: str = ""
    collected: dict[str, str] = field(default_factory=dict)  # student -> zip entry
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (zip entry, reason)
    renamed: dict[str, str] = field(default_factory=dict)  # name in the zip -> folder name
    identities: list[LmsId] = field(default_factory=list)  # who each collected student is on the platform

    def lines(self) -> list[str]:
        """The summary, one line per entry, for the instructor."""
        out = [f"pattern: {self.pattern}"]
        out += [f"  renamed    {raw!r} -> {safe}" for raw, safe in sorted(self.renamed.items())]
        out += [f"  collected  {student:<24} <- {entry}" for student, entry in sorted(self.collected.items())]
        out += [f"  skipped    {entry}: {reason}" for entry, reason in self.skipped]
        if self.identities:
            out.append(f"{len(self.identities)} {self.identities[0].platform} ids kept in lms_ids.csv, for "
                       "`make grades LMS=...` and `make feedback LMS=...`")
        return out + [f"{len(self.collected)} collected, {len(self.skipped)} skipped"]


def safe_id(raw: str) -> str:
    """A folder name for a student: ASCII letters, digits, '_', '.', '-'; a hash when nothing of the name is left."""
    ascii_name = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_name).strip("_.-")[:64].rstrip("_.-")
    return name or "student_" + hashlib.sha256(raw.encode()).hexdigest()[:10]


def skip_reason(info: zipfile.ZipInfo, path: str) -> str | None:
    """Why a zip entry is no submission to read (unsafe, macOS metadata, hidden, not a notebook), or None."""
    parts = PurePosixPath(path).parts
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link, not a file"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "absolute path"
    if ".." in parts:
        return "path leaves the zip ('..')"
    if parts[:1] == ("__MACOSX",):
        return "macOS metadata"
    if any(part.startswith(".") for part in parts):
        return "hidden file"
    return None if path.lower().endswith(".ipynb") else "not a notebook"


def read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """The entry's bytes, or None when it is bigger than limit (declared or actual)."""
    if info.file_size > limit:
        return None
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data


def notebook_error(data: bytes) -> str | None:
    """Why these bytes are not a Jupyter notebook, or None."""
    try:
        notebook = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        return f"not a valid notebook ({error})"
    return None if isinstance(notebook, dict) and "cells" in notebook else "not a valid notebook (no cells)"


def choose_pattern(pattern: str, paths: list[str]) -> tuple[str, re.Pattern[str]]:
    """Resolve a preset name, 'auto' or a regex into (name to show, compiled regex with a `student` group)."""
    if pattern == AUTO:
        found = next((name for name, regex in PRESETS.items() if any(re.fullmatch(regex, p) for p in paths)), "plain")
        return f"{AUTO} ({found})", re.compile(PRESETS[found])
    try:
        regex = re.compile(PRESETS.get(pattern, pattern))
    except re.error as error:
        presets = ", ".join(PRESETS)
        raise ValueError(f"PATTERN {pattern!r} is neither a preset ({presets}) nor a regex: {error}") from None
    if "student" not in regex.groupindex:
        raise ValueError(f"PATTERN {pattern!r} has no named group (?P<student>...) for the student id")
    return pattern, regex


def collect(zip_path: Path, assignment: str, root: Path, pattern: str = AUTO, force: bool = False,
            max_bytes: int = MAX_SUBMISSION_MB * 2**20) -> Report:
    """Copy each student's newest notebook in the zip to root/submitted/<student>/<assignment>/<assignment>.ipynb.

    Beside it goes timestamp.txt, the entry's time in the zip (when the platform received it), which nbgrader
    reads to apply late penalties.
    """
    known = sorted(p.name for p in (REPOSITORY / "solutions").glob("[0-9]*") if p.is_dir())
    if assignment not in known:
        raise ValueError(f"no assignment {assignment!r}: choose one of {', '.join(known)}")
    report = Report()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot open {zip_path} as a zip file: {error}") from None
    with archive:
        candidates: list[tuple[zipfile.ZipInfo, str]] = []
        for info in (info for info in archive.infolist() if not info.is_dir()):
            path = info.filename.replace("\\", "/")
            reason = skip_reason(info, path)
            if reason:
                report.skipped.append((info.filename, reason))
            else:
                candidates.append((info, path))
        report.pattern, regex = choose_pattern(pattern, [path for _, path in candidates])
        platform = next((name for name in PLATFORMS if PRESETS[name] == regex.pattern), "")
        by_student: dict[str, list[tuple[zipfile.ZipInfo, str]]] = {}
        matches: dict[str, re.Match[str]] = {}  # zip entry -> its match, for the platform's ids
        for info, path in candidates:
            match = regex.fullmatch(path)
            if not match or not match.group("student"):
                report.skipped.append((info.filename, f"does not match the pattern {report.pattern}"))
                continue
            raw = match.group("student")
            student = safe_id(raw)
            if student != raw:
                report.renamed[raw] = student
            by_student.setdefault(student, []).append((info, raw))
            matches[info.filename] = match
        for student, entries in sorted(by_student.items()):
            target = root / "submitted" / student / assignment / f"{assignment}.ipynb"
            kept = collect_student(archive, student, entries, target, force, max_bytes, report)
            if kept is not None and platform:
                ids = matches[kept.filename].groupdict()
                report.identities.append(LmsId(assignment, student, platform, ids["lms_id"], ids["student"],
                                               ids.get("lms_file_id") or ""))
    if report.identities:
        record_ids(root, report.identities)
    return report


def collect_student(archive: zipfile.ZipFile, student: str, entries: list[tuple[zipfile.ZipInfo, str]],
                    target: Path, force: bool, max_bytes: int, report: Report) -> zipfile.ZipInfo | None:
    """Write the newest readable notebook of one student to target; report every other entry. Returns the entry
    that target now holds (written now, or found there identical), or None."""
    names = sorted({raw for _, raw in entries})
    if len(names) > 1:
        for info, _ in entries:
            report.skipped.append((info.filename, f"students {names} share the folder name {student}: give a PATTERN "
                                                  "that tells them apart, or copy by hand"))
        return None
    newest = kept = None
    for info, _ in sorted(entries, key=lambda entry: entry[0].date_time, reverse=True):
        if newest is not None:
            report.skipped.append((info.filename, f"older notebook of {student} (newer: {newest.filename})"))
            continue
        try:
            data = read_capped(archive, info, max_bytes)
        except (OSError, RuntimeError, NotImplementedError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            report.skipped.append((info.filename, f"cannot be read from the zip ({error})"))
            continue
        reason = f"larger than {max_bytes / 2**20:g} MB" if data is None else notebook_error(data)
        if reason:
            report.skipped.append((info.filename, reason))
            continue
        newest = info
        if target.exists() and not force:
            same = target.read_bytes() == data
            report.skipped.append((info.filename, "already collected, identical" if same
                                   else f"{target} exists: FORCE=1 replaces it"))
            kept = info if same else None
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        part.write_bytes(data)
        os.replace(part, target)
        (target.parent / "timestamp.txt").write_text(f"{datetime(*info.date_time):%Y-%m-%d %H:%M:%S}\n")
        report.collected[student] = info.filename
        kept = info
    return kept


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m autograder.grading.intake.collect ZIP ASSIGNMENT [--root R] [--pattern P] [--force]
    [--max-mb N]; exits 1 when nothing was collected."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("zip", type=Path, help="the zip downloaded from the course platform")
    parser.add_argument("assignment", help="assignment folder name, e.g. 05_residual_blocks")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder"))
    parser.add_argument("--pattern", default=AUTO, help=f"{AUTO}, {', '.join(PRESETS)}, or a regex with (?P<student>)")
    parser.add_argument("--force", action="store_true", help="replace submissions that are already there")
    parser.add_argument("--max-mb", type=float, default=MAX_SUBMISSION_MB, help="skip notebooks larger than this")
    args = parser.parse_args(argv)
    try:
        report = collect(args.zip, args.assignment, args.root, args.pattern, args.force, int(args.max_mb * 2**20))
    except ValueError as error:
        print(f"collect: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    if not report.collected:
        print(f"collect: nothing was collected from {args.zip} (see the reasons above): no submission is ready to "
              "grade", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
