"""Throwaway authoring helper: turns a list of cells into an nbgrader source notebook."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = "residual-course/residual-course"


class NB:
    def __init__(self, slug):
        self.slug = slug
        self.cells = []
        self.n = 0

    def _id(self, prefix):
        self.n += 1
        return f"{prefix}-{self.n:02d}"

    def md(self, text):
        c = new_markdown_cell(text.strip("\n"))
        c.id = self._id("md")
        self.cells.append(c)

    def code(self, src, tags=None):
        c = new_code_cell(src.strip("\n"))
        c.id = self._id("code")
        if tags:
            c.metadata["tags"] = tags
        self.cells.append(c)

    def solution(self, grade_id, src):
        c = new_code_cell(src.strip("\n"))
        c.id = grade_id
        c.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                                  "schema_version": 3, "solution": True, "task": False}
        self.cells.append(c)

    def test(self, grade_id, points, src):
        c = new_code_cell(src.strip("\n"))
        c.id = grade_id
        c.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
                                  "schema_version": 3, "solution": False, "task": False}
        self.cells.append(c)

    def save(self, path):
        nb = new_notebook(cells=self.cells)
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": [], "gpuType": "T4"},
        }
        nbformat.validate(nb)
        nbformat.write(nb, path)


def badge(slug):
    url = f"https://colab.research.google.com/github/{REPO}/blob/main/lessons/{slug}/{slug}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell():
    return f'''# Setup. In Google Colab this installs the course's helper package (Colab already has torch);
# on your own machine `make lab` has installed it, and this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "residual-course @ git+https://github.com/{REPO}@v0.1.0"'''
