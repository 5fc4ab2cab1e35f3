"""Text a student can choose (class names in error messages, grade ids, folder names) made safe where it lands.

A spreadsheet reads a cell that starts with = + - @ (or a tab or carriage return before one) as a formula; a
terminal obeys the control bytes in what it prints. Each place that writes such text out calls one function here:
report.csv and grades.csv `spreadsheet_cell`, the printed summary `terminal_line`. (The feedback page escapes its
HTML in templates/course_feedback and nbgrader_steps/feedback.py.)
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@")


def terminal_line(text: str) -> str:
    """The text on one line, every character that does not print a space: control bytes (newlines, tabs, escape
    sequences' ESC and CSI), format characters (bidirectional overrides) and line or paragraph separators."""
    return "".join(char if char.isprintable() else " " for char in str(text))


def spreadsheet_cell(text: str) -> str:
    """The text as a CSV cell no spreadsheet runs: one line, no control bytes, a leading ' before a formula."""
    line = terminal_line(text)
    return f"'{line}" if line.lstrip(" ").startswith(FORMULA_START) else line
