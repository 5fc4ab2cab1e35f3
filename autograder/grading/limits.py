"""The grading's limits and markers, declared once: the Makefile, nbgrader's config and the driver read them here."""

WALL_SECONDS = 600.0  # a whole notebook (nbgrader's run, and the trusted decision, each)
MEMORY_GB = 6.0  # one submission's processes together, tmpfs included
CELL_SECONDS = 180  # one cell in nbgrader's run
OUTPUT_BYTES = 5_000_000  # what one submission's notebook run may print (the rest is cut)
TMP_MB = 1024  # the sandbox's private /tmp
MAX_SUBMISSION_MB = 50  # the largest notebook `make collect` accepts
HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
SOLUTION_BEGIN, SOLUTION_END = "BEGIN SOLUTION", "END SOLUTION"
