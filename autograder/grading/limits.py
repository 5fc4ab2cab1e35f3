"""The grading's limits and markers, declared once: the Makefile, nbgrader's config and every floor read them here."""

# A whole submission
WALL_SECONDS = 600.0  # a whole notebook (nbgrader's run, and the trusted decision, each)
MEMORY_GB = 6.0  # one submission's processes together, tmpfs included
CELL_SECONDS = 180  # one cell in nbgrader's run
KERNEL_START_SECONDS = 120  # nbgrader waits this long for the sandboxed kernel to answer
OUTPUT_BYTES = 5_000_000  # what one submission's notebook run may print (the rest is cut)
MAX_SUBMISSION_MB = 50  # the largest notebook `make collect` accepts

# The jail (jail/): one sandbox
TMP_MB = 1024  # its private /tmp
DEV_SHM_MB = 256  # its private /dev/shm
ROOT_TMPFS_MB = 16  # the tmpfs its new root file system is built on
FILE_BYTES = 1024**3  # the largest file it may write (RLIMIT_FSIZE)
MAX_PROCESSES = 512  # its processes and threads (RLIMIT_NPROC of its own uid, and its cgroup's pids.max)
SANDBOX_UIDS = (0x20000000, 0x2FFFFFFF)  # each sandbox's own uid is drawn from here, far above any user's
WATCHED_MEMORY = 1.5  # the supervisor stops a sandbox past this many times MEMORY_GB (resident + its tmpfs)
CGROUP_MEMORY = 2.0  # the kernel's backstop, past this many times MEMORY_GB (the watch reports first)
WATCH_SECONDS = 0.2  # how often the supervisor looks
OUTPUT_TAIL_BYTES = 64 * 1024  # of a flood of output, the end is kept too
SETTLE_SECONDS = 10.0  # waiting for a killed process tree, or a fork server, to be gone

# The trusted decision (decision/)
REPLY_SECONDS = 300.0  # one answer of the other process
FRAME_BYTES = 1 << 30  # one message between the two processes
START_SECONDS = 60.0  # a process forked from the fork server reports that it started
TEST_OUTPUT_CHARS = 20_000  # of a test cell's output, kept for the feedback

# The driver
LOAD_ASSIGNMENT_SECONDS = 600  # nbgrader generate_assignment, loading the gradebook
FORMGRADER_SECONDS = 3600  # one Autograde button's run of the driver

# nbgrader's markers
HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
SOLUTION_BEGIN, SOLUTION_END = "BEGIN SOLUTION", "END SOLUTION"
