"""Feedback that shows which hidden test failed and why, never the hidden tests' code."""

from __future__ import annotations

import re

from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?",
                          re.DOTALL | re.MULTILINE)
PLACEHOLDER = "# (hidden tests ran here; their code stays with the instructor)\n"


def hide_tests(source: str) -> str:
    """The test cell's source with each hidden block replaced by a one-line placeholder."""
    return HIDDEN_BLOCK.sub(PLACEHOLDER, source)


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
