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
import nbformat
from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.grading.limits import HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END
from autograder.grading.settings import REPOSITORY

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


def as_plain_text(markdown: str) -> str:
    """Markdown that shows the text as written: a fenced block longer than any run of backticks inside it, which
    the page escapes (no tag or script a student wrote reaches the instructor's browser as HTML)."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", markdown)), default=0))
    return f"{fence}text\n{markdown}\n{fence}"


def lesson_markdown(assignment: str) -> set[str]:
    """The markdown cells the lesson itself has (the source notebook's): the only ones rendered as HTML."""
    path = REPOSITORY / "solutions" / assignment / f"{assignment}.ipynb"
    if not path.exists():
        return set()
    return {cell.source.strip() for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"}


class ReadableFeedback(NbGraderPreprocessor):
    """MathML for the lesson's LaTeX; a student's own markdown as plain text; each check's output once; each test
    cell's checked properties named."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        self._lesson = lesson_markdown(str(resources.get("nbgrader", {}).get("assignment", "")))
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict,
                        index: int) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type == "markdown":
            written_by_the_lesson = cell.source.strip() in self._lesson
            cell.source = math_to_mathml(cell.source) if written_by_the_lesson else as_plain_text(cell.source)
            return cell, resources
        if cell.cell_type == "raw":
            cell.source = ""  # raw cells go into the page unescaped
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
