"""nbgrader's Execute step with the notebook's output bounded in bytes, whatever the kernel prints.

nbgrader's LimitOutput counts lines after the run, so one 600 MiB line without a newline went whole into the
autograded notebook and its log. Here every output message is measured as it arrives; past the cap the rest of the
notebook's output is dropped, with one line saying so.
"""

from __future__ import annotations

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

from autograder.grading.limits import OUTPUT_BYTES


class CappedExecute(Execute):
    """Execute, keeping at most `max_output_bytes` of output per notebook."""

    max_output_bytes = Integer(OUTPUT_BYTES, help="bytes of output kept per notebook").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict | None = None, km: object = None) -> tuple:
        self._output_bytes, self._output_cut = 0, False
        return super().preprocess(nb, resources, km)

    def output(self, outs: list[NotebookNode], msg: dict, display_id: str | None,
               cell_index: int) -> NotebookNode | None:
        """Drop an output that would take the notebook past the cap (and say so once)."""
        size = _size(msg.get("content", {}))
        if self._output_bytes + size > self.max_output_bytes:
            if not self._output_cut:
                self._output_cut = True
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=f"[output cut: the notebook printed "
                                                   f"more than {self.max_output_bytes:,} bytes]\n"))
            return None
        self._output_bytes += size
        return super().output(outs, msg, display_id, cell_index)


def _size(content: object) -> int:
    """Roughly how many bytes a message's content holds (its strings)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):
        return sum(_size(v) for v in content.values())
    if isinstance(content, list):
        return sum(_size(v) for v in content)
    return 8
