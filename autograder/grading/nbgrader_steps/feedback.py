"""Feedback a student can read: no hidden test code, math that renders offline, each check once and named.

The test cells' outputs in the autograded notebook are the trusted decision's (pipeline.show_trusted_outputs).
Here, before nbconvert writes the page (templates/course_feedback): hidden blocks become a placeholder line, the
markdown's LaTeX becomes MathML (browsers draw it natively; no MathJax from a CDN), a check whose visible and
hidden calls printed the same lines shows them once, and each test cell carries the list of properties it checked,
which the page's summary shows beside its grade id.
"""

from __future__ import annotations

import re
from pathlib import Path

import latex2mathml.converter
from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.grading.limits import HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END

TEMPLATES = Path(__file__).with_name("templates")
HIDDEN_BLOCK = re.compile(rf"^[ \t]*### {HIDDEN_TESTS_BEGIN}.*?^[ \t]*### {HIDDEN_TESTS_END}[^\n]*\n?",
                          re.DOTALL | re.MULTILINE)
PLACEHOLDER = "# (hidden tests ran here; their code stays with the instructor)\n"
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$")
CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
CHECK_LINE = re.compile(r"^  (?:PASS|FAIL)  (.+)$")


def hide_tests(source: str) -> str:
    """The test cell's source with each hidden block replaced by a one-line placeholder."""
    return HIDDEN_BLOCK.sub(PLACEHOLDER, source)


def math_to_mathml(markdown: str) -> str:
    """$...$ and $$...$$ outside code as MathML; a formula the converter cannot read stays as it was."""
    def convert(match: re.Match, display: str) -> str:
        try:
            return latex2mathml.converter.convert(match.group(1).strip(), display=display)
        except Exception:  # noqa: BLE001 (the converter raises many types; the LaTeX then shows as written)
            return match.group(0)

    parts = CODE.split(markdown)
    for index in range(0, len(parts), 2):  # even parts are prose, odd parts code
        prose = DISPLAY_MATH.sub(lambda m: convert(m, "block"), parts[index])
        parts[index] = INLINE_MATH.sub(lambda m: convert(m, "inline"), prose)
    return "".join(parts)


def once(text: str) -> str:
    """A check's output with a block ("Checking ..." and its lines) that repeats an earlier one left out."""
    blocks, seen, kept = re.split(r"(?m)^(?=Checking )", text), set(), []
    for block in blocks:
        if block.startswith("Checking ") and block in seen:
            continue
        seen.add(block)
        kept.append(block)
    return "".join(kept)


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden test code from test cells, and the code lines that tracebacks quote from them."""

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict,
                        index: int) -> tuple[NotebookNode, ResourcesDict]:
        """Only cells whose source has hidden tests change; their errors keep the type and the message."""
        hidden = HIDDEN_BLOCK.search(cell.get("source", "")) if cell.cell_type == "code" else None
        if hidden:
            cell.source = hide_tests(cell.source)
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class ReadableFeedback(NbGraderPreprocessor):
    """MathML for the markdown's LaTeX; each check's output once; each test cell's checked properties named."""

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict,
                        index: int) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source)
            return cell, resources
        checks: list[str] = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = once(output.text)
                for line in output.text.splitlines():
                    match = CHECK_LINE.match(line)
                    if match and match.group(1) not in checks:
                        checks.append(match.group(1))
        if checks:
            cell.metadata["checks"] = checks
        return cell, resources
