"""nbgrader configuration of the course: run every nbgrader command from this folder (the Makefile does)."""

import os
import sys

c = get_config()  # noqa: F821  (nbgrader injects get_config)

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)
sys.path.insert(0, REPOSITORY)
from autograder.grading import limits  # noqa: E402

c.CourseDirectory.course_id = "residual-course"
# Work folders (submitted/, autograded/, feedback/, the sqlite gradebook) live here, or under GRADING_ROOT if set.
c.CourseDirectory.root = os.environ.get("GRADING_ROOT") or HERE
# One source of truth: instructors edit solutions/, nbgrader writes the student notebooks to lessons/.
c.CourseDirectory.source_directory = os.path.join(REPOSITORY, "solutions")
c.CourseDirectory.release_directory = os.environ.get("RELEASE_DIR") or os.path.join(REPOSITORY, "lessons")
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The course collects through `make collect` (an LMS download); nbgrader's exchange, if an instructor uses it
# anyway, lives beside the work folders (`make formgrader` creates it: no "unwritable exchange" warning).
c.Exchange.root = os.path.join(c.CourseDirectory.root, "exchange")
# The gradebook: sqlite next to this file unless NBGRADER_DB_URL names another database (any SQLAlchemy URL).
c.CourseDirectory.db_url = os.environ.get(
    "NBGRADER_DB_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
)
# Only notebooks are assignment files; the lessons import everything else from the helper package.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# Stubs raise, so an untouched exercise fails its checks loudly instead of passing silently.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = limits.SOLUTION_BEGIN
c.ClearSolutions.end_solution_delimeter = limits.SOLUTION_END
c.ClearHiddenTests.begin_test_delimeter = limits.HIDDEN_TESTS_BEGIN
c.ClearHiddenTests.end_test_delimeter = limits.HIDDEN_TESTS_END
# Released notebooks carry no outputs, so git diffs stay readable.
c.ClearOutput.enabled = True

# Autograding runs in fast mode (nbgrader sets NBGRADER_EXECUTION): a lesson takes well under a minute on a CPU.
c.Execute.timeout = limits.CELL_SECONDS
c.Execute.startup_timeout = limits.KERNEL_START_SECONDS
c.Execute.interrupt_on_timeout = True
# ...with its output bounded in bytes (a kernel that prints a gigabyte gets a line saying it was cut).
from nbgrader.converters import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute  # noqa: E402

from autograder.grading.nbgrader_steps.execute import CappedExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [CappedExecute if step is Execute else step
                                       for step in Autograde.class_traits()["autograde_preprocessors"].default()]

# Feedback: the trusted decision's output for each test cell (pipeline.py), hidden tests' code never, math as
# MathML (offline), each check once and named in the summary (autograder/grading/nbgrader_steps/feedback.py and
# its template).
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from autograder.grading.nbgrader_steps.feedback import TEMPLATES, HideHiddenTests, ReadableFeedback  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, ReadableFeedback, CSSHTMLHeaderPreprocessor]
c.HTMLExporter.template_name = "course_feedback"
c.HTMLExporter.sanitize_html = True  # outputs' HTML cleaned too (the test cells' outputs are plain text anyway)
c.HTMLExporter.extra_template_basedirs = [str(TEMPLATES)]

# `make grades`: grades.csv with each row's status and reason from report.csv; no silent zero for ungraded work.
from autograder.grading.nbgrader_steps.export import CsvWithStatusExport  # noqa: E402

c.ExportApp.plugin_class = CsvWithStatusExport
