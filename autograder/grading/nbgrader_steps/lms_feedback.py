"""`make feedback LMS=canvas|moodle`: each student's feedback page zipped in the layout the platform's upload takes,
so one upload per assignment returns every page to its student (keyed by lms_ids.csv, from `make collect`).

Moodle ("Upload multiple feedback files in a zip"): `<Full name>_<participant id>_assignsubmission_file_/<file>`,
the download's own layout; each file becomes a feedback file of that participant.
Canvas ("Re-upload submissions", the only bulk upload it has): files named like the download,
`<name>_<user id>_<attachment id>_<file>`; Canvas adds each to that student's submission as a comment with the
file attached, under the name of the student's submitted file.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from pathlib import Path

from autograder.grading.intake.lms_ids import PLATFORMS, LmsId, read_ids

REPOSITORY = Path(__file__).resolve().parents[3]


def entry_name(identity: LmsId, assignment: str) -> str | None:
    """Where a student's page goes in the platform's zip, or None when the ids it needs are missing."""
    page = f"{assignment}-feedback.html"
    if identity.platform == "moodle":  # Moodle splits the folder name at '_' and takes the second part as the id
        name = re.sub(r"[_/\\]+", " ", identity.lms_name).strip(" '.") or "Participant"
        return f"{name}_{identity.lms_id}_assignsubmission_file_/{page}"
    if not identity.lms_file_id:
        return None
    # Canvas takes the first two all-digit parts of the name as the user and attachment ids: the name has no digits
    name = re.sub(r"[^A-Za-z-]+", "", identity.lms_name) or "student"
    return f"{name}_{identity.lms_id}_{identity.lms_file_id}_{page}"


def bundle(root: Path, platform: str, assignment: str) -> tuple[Path | None, list[str]]:
    """root/feedback-<platform>-<assignment>.zip with every page that has an identity; the sentences for the rest."""
    if platform not in PLATFORMS:
        raise ValueError(f"LMS={platform!r}: choose one of {', '.join(PLATFORMS)}")
    ids = {identity.student: identity for identity in read_ids(root)
           if identity.platform == platform and identity.assignment == assignment}
    pages = {path.parent.parent.name: path for path in sorted((root / "feedback").glob(f"*/{assignment}/*.html"))}
    sentences = [f"{student}, {assignment}: no {platform} id (not collected from this assignment's {platform} "
                 "download): the page is not in the zip; send it by hand" for student in sorted(set(pages) - set(ids))]
    sentences += [f"{student}, {assignment}: no feedback page (run `make autograde` and `make feedback "
                  f"A={assignment}`): not in the zip" for student in sorted(set(ids) - set(pages))]
    entries = {}
    for student in sorted(set(pages) & set(ids)):
        name = entry_name(ids[student], assignment)
        if name is None:
            sentences.append(f"{student}, {assignment}: lms_ids.csv has no Canvas attachment id for this student, "
                             "which Canvas's re-upload needs: collect the Canvas download again")
        else:
            entries[name] = pages[student]
    if not entries:
        return None, sentences
    path = root / f"feedback-{platform}-{assignment}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, page in entries.items():
            archive.write(page, name)
    return path, sentences


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m autograder.grading.nbgrader_steps.lms_feedback canvas|moodle ASSIGNMENT... [--root R];
    exits 2, with a sentence, when there is nothing to zip."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("platform", help=" or ".join(PLATFORMS))
    parser.add_argument("assignments", nargs="+")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("GRADING_ROOT") or REPOSITORY / "autograder"))
    args = parser.parse_args(argv)
    zipped = 0
    for assignment in args.assignments:
        try:
            path, sentences = bundle(args.root, args.platform, assignment)
        except ValueError as error:
            print(f"feedback: {error}", file=sys.stderr)
            return 2
        print("\n".join([f"wrote {path}" if path else f"{assignment}: no page to zip for {args.platform}", *sentences]))
        zipped += path is not None
    if not zipped:
        print(f"feedback: no {args.platform} zip was written: lms_ids.csv has no {args.platform} id for any student "
              "with a feedback page (`make collect` keeps them from the platform's download)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
