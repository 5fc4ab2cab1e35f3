"""`make grades`: nbgrader's CSV export with each row's grading status and reason from report.csv beside it.

Plain nbgrader exports 0 for a submission it has no score for, whether the student handed in nothing, the notebook
timed out or it could not be read. Here such a row keeps an empty score and says why, so no zero is silent.
"""

from __future__ import annotations

import csv
from pathlib import Path

from nbgrader.plugins import CsvExportPlugin

from autograder.grading.escape import spreadsheet_cell
from autograder.grading.report import read_report
from autograder.grading.status import Status

NOT_SUBMITTED = "not submitted"
TEXT_FIELDS = ("assignment", "student_id", "last_name", "first_name", "email", "status", "reason", "review")


class CsvWithStatusExport(CsvExportPlugin):
    """grades.csv with `status` and `reason` columns; students the batch could not score get no score."""

    def export(self, gradebook: object) -> None:
        """Write nbgrader's rows, then add the report's status to each and the rows the gradebook never saw."""
        super().export(gradebook)
        path = Path(self.to or "grades.csv")
        report = {(row["assignment"], row["student_id"]): row for row in read_report(path.parent)}
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        fields = [*rows[0].keys(), "status", "reason", "review"] if rows else [
            "assignment", "student_id", "score", "max_score", "status", "reason", "review"]
        for row in rows:
            reported = report.pop((row["assignment"], spreadsheet_cell(row["student_id"])), None)
            if reported is None:
                row["status"] = Status.GRADED if row["timestamp"] else NOT_SUBMITTED
                row["reason"] = row["review"] = ""
                continue
            row["status"], row["reason"] = reported["status"], reported["reason"]
            row["review"] = reported.get("review", "")
            if not Status(reported["status"]).keeps_score:
                row["raw_score"] = row["score"] = ""
        for (assignment, student), reported in sorted(report.items()):  # never in the gradebook (malformed ones)
            if (not self.assignment or assignment in self.assignment) and (not self.student or student in self.student):
                rows.append({"assignment": assignment, "student_id": student, "score": "",
                             "max_score": str(float(reported["max_score"])), "status": reported["status"],
                             "reason": reported["reason"], "review": reported.get("review", "")})
        for row in rows:  # names from the gradebook or an LMS, reasons naming a student's classes: never a formula
            row.update({name: spreadsheet_cell(row[name]) for name in TEXT_FIELDS if row.get(name)})
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fields, restval="")
            writer.writeheader()
            writer.writerows(rows)

