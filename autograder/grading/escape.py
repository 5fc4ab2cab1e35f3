"""Text a student can choose (class names in error messages, grade ids, folder names) made safe where it lands.

A spreadsheet reads a cell that starts with = + - @ (or a tab or carriage return before one) as a formula; a
terminal obeys the control bytes in what it prints. Each place that writes such text out calls one function here:
report.csv and grades.csv `spreadsheet_cell`, the printed summary `terminal_line`. (The feedback page escapes its
HTML in templates/course_feedback and nbgrader_steps/feedback.py.)
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: newlines and tabs too (a row or a line is one line)
FORMULA_START = ("=", "+", "-", "@")


def terminal_line(text: str) -> str:
    """The text on one line, with every control byte (escape sequences' ESC and CSI among them) a space."""
    return CONTROL.sub(" ", str(text))


def spreadsheet_cell(text: str) -> str:
    """The text as a CSV cell no spreadsheet runs: one line, no control bytes, a leading ' before a formula."""
    line = terminal_line(text)
    return f"'{line}" if line.lstrip(" ").startswith(FORMULA_START) else line
