"""The grading pipeline's parts, one at a time: preflight, the wire, graphs, the trusted decision, the sandbox,
supervision, slots, review flags and feedback."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from fixtures.residual_blocks import TextbookBasicBlock, TorchvisionBasicBlock
from hostile import CORPUS, _stripped, _text
from notebooks import REPOSITORY, notebook_path
from torch import nn

from autograder.grading.batch import Slots
from autograder.grading.decision import decide, forkserver, wire
from autograder.grading.decision.graphs import ALLOWED_OPS, GraphError, check_spec, export_graph
from autograder.grading.decision.rebuilt import StudentModule
from autograder.grading.intake.flags import review_reasons
from autograder.grading.intake.preflight import MALFORMED, MANUAL, OK, REPAIRED, preflight
from autograder.grading.jail import cgroups, isolate, supervise
from autograder.grading.limits import MAX_PROCESSES, SANDBOX_UIDS, TMP_MB
from autograder.grading.nbgrader_steps.feedback import (
    HideHiddenTests,
    ReadableFeedback,
    hide_tests,
    math_to_mathml,
    once,
)
from autograder.grading.settings import Settings
from autograder.grading.status import Status
from residual_course.probes import trace_forward

RELEASE = nbformat.read(notebook_path("lessons", "05_residual_blocks"), as_version=4)


def check(tmp_path: Path, text: str):
    path = tmp_path / "submission.ipynb"
    path.write_text(text)
    return preflight(path, RELEASE)


def grade_ids(notebook) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if c.metadata.get("nbgrader")]


# ---------------------------------------------------------------- preflight

def test_an_intact_submission_passes_untouched(tmp_path):
    verdict = check(tmp_path, CORPUS["solved"].build())
    assert (verdict.status, verdict.reasons) == (OK, [])


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"cells": [', "not valid JSON (line 1, column 12"),
    ('{"cells": 3}', "not a valid notebook"),
    ("\udcff", "not valid JSON"),
])
def test_broken_files_are_malformed_with_a_sentence(tmp_path, text, fragment):
    path = tmp_path / "submission.ipynb"
    path.write_bytes(text.encode(errors="surrogateescape"))
    verdict = preflight(path, RELEASE)
    assert verdict.status == MALFORMED and verdict.notebook is None
    assert fragment in verdict.reason or "not text" in verdict.reason


def test_metadata_lost_in_a_round_trip_is_reattached_by_cell_id(tmp_path):
    verdict = check(tmp_path, _text(_stripped(keep_ids=True)))
    assert verdict.status == REPAIRED
    assert grade_ids(verdict.notebook) == grade_ids(RELEASE)


def test_an_answer_cell_is_found_by_position_when_ids_are_lost_too(tmp_path):
    verdict = check(tmp_path, _text(_stripped(keep_ids=False)))
    assert verdict.status == REPAIRED
    answer = next(c for c in verdict.notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "basic-block")
    assert "class BasicBlock" in answer.source and "raise NotImplementedError" not in answer.source


def test_an_ambiguous_answer_cell_goes_to_a_person(tmp_path):
    verdict = check(tmp_path, CORPUS["colab-round-trip-ambiguous"].build())
    assert verdict.status == MANUAL and "'basic-block'" in verdict.reason


def test_a_duplicated_answer_cell_is_graded_on_its_last_copy(tmp_path):
    verdict = check(tmp_path, CORPUS["duplicates-answer-cell"].build())
    copies = [c for c in verdict.notebook.cells if "class BasicBlock" in c.source]
    assert [bool(c.metadata.get("nbgrader")) for c in copies] == [False, True]
    assert grade_ids(verdict.notebook) == grade_ids(RELEASE)


def test_a_deleted_test_cell_comes_back_in_its_place(tmp_path):
    verdict = check(tmp_path, CORPUS["deletes-test-cell"].build())
    ids = grade_ids(verdict.notebook)
    assert ids == grade_ids(RELEASE)
    assert ids.index("basic-block-relu-after-add") == ids.index("basic-block-identity") + 1


def test_an_edited_test_cell_is_reported(tmp_path):
    verdict = check(tmp_path, CORPUS["edits-test-cell"].build())
    assert verdict.status == REPAIRED and "'basic-block-relu-after-add' was edited" in verdict.reason


# ---------------------------------------------------------------- the wire: data only, bounded

def test_tensors_cross_as_raw_bytes_and_come_back_equal():
    blobs: list[bytes] = []
    specs = [wire.tensor_to_wire(t, blobs) for t in (torch.randn(3, 4), torch.arange(5), torch.tensor([True]),
                                                     torch.randn(2, dtype=torch.bfloat16), torch.empty(0, 3))]
    read, write = os.pipe()
    wire.send(write, {"specs": specs}, blobs)
    message, received = wire.receive(read, timeout=5)
    back = [wire.tensor_from_wire(spec, received) for spec in message["specs"]]
    assert [t.dtype for t in back] == [torch.float32, torch.int64, torch.bool, torch.bfloat16, torch.float32]
    assert all(torch.equal(a, b) for a, b in zip(back, [wire.tensor_from_wire(s, blobs) for s in specs], strict=True))


def test_a_tensor_subclass_arrives_as_a_plain_tensor():
    class Agreeable(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True if func is torch.equal else super().__torch_function__(func, types, args, kwargs or {})

    blobs: list[bytes] = []
    back = wire.tensor_from_wire(wire.tensor_to_wire(torch.zeros(3).as_subclass(Agreeable), blobs), blobs)
    assert type(back) is torch.Tensor and not torch.equal(back, torch.ones(3))


@pytest.mark.parametrize("spec", [{"tensor": 0, "dtype": "float32", "shape": [4], "device": "cpu"},
                                  {"tensor": 0, "dtype": "object", "shape": [1]}, {"tensor": 5, "dtype": "int64"}])
def test_malformed_tensor_descriptions_are_refused(spec):
    with pytest.raises(wire.WireError):
        wire.tensor_from_wire(spec, [b"\x00" * 8])


def test_frames_over_the_limit_and_silence_are_refused():
    read, write = os.pipe()
    wire.send(write, {"big": "x" * 1000}, [])
    with pytest.raises(wire.WireError, match="over the"):
        wire.receive(read, timeout=5, max_bytes=100)
    quiet_read, _quiet_write = os.pipe()
    with pytest.raises(wire.WireError, match="stopped answering"):
        wire.receive(quiet_read, timeout=0.2)


# ---------------------------------------------------------------- graphs: the student's module without its Python

def rebuilt(module: nn.Module, name: str = "Block") -> StudentModule:
    """What the trusted side makes of a module: its tensors as data, its forward as exported graphs."""
    blobs: list[bytes] = []
    parameters = {id(p) for p in module.parameters()}
    state = [{"name": k, "kind": "parameter" if id(v) in parameters else "buffer",
              "value": wire.tensor_to_wire(v.detach(), blobs), "requires_grad": True}
             for k, v in module.state_dict(keep_vars=True).items()]

    def export(signature, training):
        module.train(training)
        inputs = tuple(torch.randn(s[0]).to(memory_format=torch.channels_last) if s[3] == "channels_last"
                       else torch.randn(s[0]) for s in signature)
        graph_blobs: list[bytes] = []
        return export_graph(module, inputs, graph_blobs), graph_blobs

    return StudentModule(name, state, blobs, None, lambda ident: None, export, None, module.training)


@pytest.mark.parametrize("block", [TorchvisionBasicBlock(8, 16, 2), TextbookBasicBlock(8, 8, 1)],
                         ids=["torchvision", "textbook"])
def test_a_rebuilt_module_computes_what_the_student_module_computes(block):
    torch.manual_seed(0)
    copy = rebuilt(block)
    x = torch.randn(4, 8, 8, 8)
    for mode in (True, False):
        block.train(mode), copy.train(mode)
        assert torch.allclose(copy(x), block(x), atol=1e-6)
    assert [name for name, _ in copy.named_parameters()] == [name for name, _ in block.named_parameters()]
    assert list(copy.state_dict()) == list(block.state_dict())
    x.requires_grad_(True)
    copy(x).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in copy.parameters())


def test_a_rebuilt_module_is_graded_on_its_own_weights_and_layers():
    block = TextbookBasicBlock(8, 8, 1)
    copy = rebuilt(block).eval()
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.zero_()
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(copy(x), F.relu(x))  # the student's own module was never zeroed
    convs = trace_forward(copy, x, (nn.Conv2d,))
    assert [c.module.kernel_size for c in convs] == [(3, 3), (3, 3)]


class HandBatchNorm(nn.Module):
    """Lesson 02's BatchNorm: running estimates updated under `no_grad` inside forward."""

    def __init__(self, features: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(features)), nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * mean)
                self.running_var.mul_(0.9).add_(0.1 * x.var(dim=0, unbiased=True))
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight * (x - mean) / torch.sqrt(var + 1e-5) + self.bias


def test_a_no_grad_block_inside_forward_is_rebuilt_and_updates_the_buffers():
    torch.manual_seed(0)
    norm = HandBatchNorm(5)
    copy = rebuilt(norm, "BatchNorm").train()
    x = torch.randn(16, 5) * 3 + 2
    out = copy(x)
    assert torch.allclose(out, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5), atol=1e-5)
    assert torch.allclose(copy.get_buffer("running_mean"), 0.1 * x.mean(0), atol=1e-6)
    assert torch.allclose(copy.get_buffer("running_var"), 0.9 + 0.1 * x.var(0, unbiased=True), atol=1e-5)


def test_operations_inside_a_no_grad_block_are_checked_against_the_allow_list():
    inner = {"inputs": [], "nodes": [{"target": "aten::from_file.default", "args": [], "kwargs": {}}], "outputs": []}
    with pytest.raises(GraphError, match="aten::from_file"):
        check_spec({"nodes": [{"target": "hop::wrap_with_set_grad_enabled", "args": [False], "body": inner,
                               "kwargs": {}}]})


def test_operations_outside_the_allow_list_are_refused_before_anything_runs():
    assert "aten::conv2d.default" in ALLOWED_OPS and not any("from_file" in op for op in ALLOWED_OPS)
    with pytest.raises(GraphError, match="aten::from_file"):
        check_spec({"nodes": [{"target": "aten::from_file.default", "args": [], "kwargs": {}}]})


# ---------------------------------------------------------------- the trusted decision

def decision(tmp_path: Path, *cells: dict) -> decide.Decision:
    """decide() on a job of cells, without the sandbox around the processes (the protocol is under test here)."""
    settings = Settings("05_residual_blocks", tmp_path, "sqlite://", isolated=False, wall_seconds=120, memory_gb=0)
    result, why = decide.decide(settings, {"cells": list(cells)}, dict(os.environ))
    assert result is not None, why
    return result


IMPORTS = {"kind": "code", "source": "import torch\nfrom torch import nn\nimport torch.nn.functional as F"}


def answer(source: str, *names: str) -> dict:
    return {"kind": "solution", "grade_id": "answer", "source": source, "names": list(names)}


def graded_cell(gid: str, source: str) -> dict:
    return {"kind": "test", "grade_id": gid, "source": source}


def test_the_trusted_side_judges_what_the_student_code_computes(tmp_path):
    result = decision(tmp_path, IMPORTS,
                      answer("def double(x):\n    return 2 * x\nanswer = 42\n", "double", "answer"),
                      graded_cell("value", "assert answer == 42"),
                      graded_cell("function", "z = torch.randn(5, requires_grad=True)\n"
                                              "assert torch.equal(double(z), 2 * z)\ndouble(z).sum().backward()\n"
                                              "assert torch.equal(z.grad, torch.full((5,), 2.0))"),
                      graded_cell("wrong", "assert double(torch.ones(2)).sum() == 3, 'not three'"))
    assert result.verdicts == {"value": None, "function": None, "wrong": "AssertionError: not three"}


def test_what_the_student_patches_in_its_process_does_not_reach_the_trusted_side(tmp_path):
    patches = ("torch.allclose = lambda *a, **k: True\ntorch.Tensor.__eq__ = lambda *a: True\n"
               "import builtins\nbuiltins.AssertionError = Warning\n"
               "def double(x):\n    return 3 * x\n")
    result = decision(tmp_path, IMPORTS, answer(patches, "double"),
                      graded_cell("check", "assert torch.allclose(double(torch.ones(2)), torch.full((2,), 2.0)), "
                                           "'not 2x'"))
    assert result.verdicts == {"check": "AssertionError: not 2x"}


def test_a_student_module_is_exported_and_run_on_the_trusted_side(tmp_path):
    block = "class Scale(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
            "        self.w = nn.Parameter(torch.ones(3))\n    def forward(self, x):\n        return x * self.w\n"
    result = decision(tmp_path, IMPORTS, answer(block, "Scale"),
                      graded_cell("zeroed", "m = Scale()\nwith torch.no_grad():\n    m.w.zero_()\n"
                                     "assert torch.equal(m(torch.ones(2, 3)), torch.zeros(2, 3))"),
                      graded_cell("counted", "assert sum(p.numel() for p in Scale().parameters()) == 3"))
    assert result.verdicts == {"zeroed": None, "counted": None} and not result.export_failures


def test_a_module_that_cannot_be_exported_is_reported_not_scored(tmp_path):
    block = "class Moody(nn.Module):\n    def forward(self, x):\n        return x if x.sum() > 0 else -x\n"
    result = decision(tmp_path, IMPORTS, answer(block, "Moody"), graded_cell("runs", "Moody()(torch.ones(2))"))
    assert result.verdicts["runs"] and "could not be exported" in result.export_failures[0]


def test_a_missing_answer_leaves_its_names_unbound(tmp_path):
    result = decision(tmp_path, IMPORTS, {"kind": "code", "source": "double = abs  # shown before the exercise"},
                      answer("raise NotImplementedError()", "double"), graded_cell("uses", "double(-1)"))
    assert result.verdicts["uses"] == "NameError: name 'double' is not defined"


def test_the_names_an_answer_must_define_come_from_the_solution():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n"
              "class B(nn.Module):\n    pass\nbudget: int = 3\na, (b, c) = 1, (2, 3)\n")
    assert decide.defined_names(source) == ["f", "B", "budget", "a", "b", "c"]
    inside_blocks = ("with torch.no_grad():\n    loss = 2.3\nif True:\n    kept = 1\nelse:\n    other = 2\n"
                     "def g():\n    local = 0\n")
    assert decide.defined_names(inside_blocks) == ["loss", "kept", "other", "g"], "a function's locals are not"


# ---------------------------------------------------------------- the sandbox

needs_namespaces = pytest.mark.skipif(not isolate.namespaces_available(),
                                      reason="network, mount, PID, UTS and IPC namespaces need root on Linux")
PROBE = """
import json, os, socket, sys
seen = {"uid": os.getuid(), "cwd": os.getcwd(), "env": sorted(os.environ), "parent": os.getppid(),
        "root": sorted(os.listdir("/")), "read": open(sys.argv[2]).read()}
seen["absent"] = [path for path in sys.argv[3:] if not os.path.exists(path)]
for name, path in (("proc_sys", "/proc/sys/kernel/core_pattern"), ("course", sys.argv[1])):
    try:
        open(path, "a").write("changed")
        seen[name] = "written"
    except OSError as error:
        seen[name] = error.strerror
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    seen["network"] = "reachable"
except OSError as error:
    seen["network"] = str(error)
seen["hostname_ns"] = os.readlink("/proc/self/ns/uts")
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", b"leak", b"hidden test source", 18, -3)  # add_key to the session keyring
seen["keyring"] = os.strerror(ctypes.get_errno()) if key < 0 else "a key was added"
seen["cgroup"] = open("/proc/self/cgroup").read()
seen["environ"] = open("/proc/self/environ").read()
seen["status"] = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps(seen))
"""


def run_sandboxed(launcher: str, source: str, args: list[str], *, memory_gb: float, read: list[Path] = (),
                  tmp_mb: int = TMP_MB, tmp_path: Path) -> supervise.Ended:
    """Run Python source in the sandbox as a kernel starts (isolate.py's exec) or as the trusted decision's two
    processes start (a fork of the batch's fork server), each with a uid and a cgroup of its own."""
    cgroup = cgroups.for_sandbox(memory_gb)
    jail = {"uid": isolate.sandbox_uid(), "cgroup": list(cgroup.folders) if cgroup else []}
    if launcher == "exec":
        command = isolate.isolated_command([sys.executable, "-c", source, *args], memory_gb=memory_gb, read=read,
                                           tmp_mb=tmp_mb, **jail)
        return supervise.run(command, env=dict(os.environ), wall_seconds=60, memory_gb=memory_gb, cgroup=cgroup)
    modules = tmp_path / "probe_modules"
    modules.mkdir(exist_ok=True)
    (modules / "probe_module.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": f"{REPOSITORY}{os.pathsep}{modules}"}
    server = forkserver.ForkServer(env)
    try:
        process = server.start(["-m", "probe_module", *args], env=env, read=[modules, *read], memory_gb=memory_gb,
                               tmp_mb=tmp_mb, **jail)
        return supervise.watch(process, wall_seconds=60, memory_gb=memory_gb, cgroup=cgroup)
    finally:
        server.close()


@needs_namespaces
@pytest.mark.parametrize("launcher", ["exec", "fork"])
def test_a_sandboxed_process_sees_only_what_it_needs(tmp_path, monkeypatch, launcher):
    second_copy = REPOSITORY.parent / f".{REPOSITORY.name}-probe-copy"
    (second_copy / "solutions").mkdir(parents=True, exist_ok=True)
    (second_copy / "solutions" / "answers.ipynb").write_text("the answers")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("readable")
    monkeypatch.setenv("NBGRADER_DB_URL", "sqlite:///secret.db")
    in_home = Path.home() / ".residual-course-probe"
    in_home.write_text("private")
    hidden = [str(second_copy / "solutions"), str(REPOSITORY / "solutions"), str(REPOSITORY / "tests"),
              str(REPOSITORY / ".git"), str(in_home), str(tmp_path / "absent-sibling")]
    (tmp_path / "absent-sibling").mkdir()
    try:
        ended = run_sandboxed(launcher, PROBE, [str(REPOSITORY / "residual_course" / "x.py"), str(allowed), *hidden],
                              memory_gb=1, read=[allowed], tmp_path=tmp_path)
    finally:
        subprocess.run(["rm", "-rf", str(second_copy), str(in_home)])
    assert ended.status == Status.GRADED and ended.returncode == 0, ended.output[-2000:]
    seen = json.loads(ended.output.strip().splitlines()[-1])
    low, high = SANDBOX_UIDS
    assert low <= seen["uid"] <= high and seen["parent"] == 0  # a uid of its own, alone in its PID namespace
    assert seen["keyring"] == "Operation not permitted"  # no key can carry data to another sandbox
    if cgroups.for_sandbox(1) is not None:  # where cgroups can be written (they can on CI)
        assert "residual-course-" in seen["cgroup"]
    assert seen["absent"] == hidden and seen["read"] == "readable"
    assert seen["course"] == "Read-only file system"
    assert seen["proc_sys"] in ("Read-only file system", "Permission denied")
    assert "unreachable" in seen["network"] or "resolution" in seen["network"]
    assert seen["hostname_ns"] != os.readlink("/proc/self/ns/uts")
    assert "NBGRADER_DB_URL" not in seen["env"] and seen["cwd"].startswith("/tmp/")
    assert "NBGRADER_DB_URL" not in seen["environ"]  # nor in the environment the process started with
    capabilities = [int(seen["status"][name], 16) for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
    assert capabilities == [0, 0, 0, 0, 0] and seen["status"]["NoNewPrivs"].strip() == "1"
    assert REPOSITORY.parts[1] in seen["root"]  # the course is there; the home directory was checked above


@needs_namespaces
@pytest.mark.parametrize(("launcher", "memory_gb", "ballast_mb"), [("exec", 0.25, 450), ("fork", 1.0, 1800)])
def test_a_sandbox_leaves_nothing_behind_and_its_tmpfs_counts_as_memory(tmp_path, launcher, memory_gb, ballast_mb):
    """A forked process starts with torch's pages mapped (about 0.7 GB), so its limit and ballast are larger."""
    fill = (f"import os, time\nprint('started', flush=True)\nfor i in range({ballast_mb} // 450):\n"
            "    with open(f'/tmp/ballast{i}', 'wb') as f:\n        for _ in range(450):\n"
            "            f.write(b'x' * 2**20)\nos.fork() or time.sleep(60)\ntime.sleep(60)")
    start = time.monotonic()
    ended = run_sandboxed(launcher, fill, [], memory_gb=memory_gb, tmp_mb=ballast_mb + 512, tmp_path=tmp_path)
    assert ended.status == Status.OUT_OF_MEMORY and time.monotonic() - start < 30, ended.output[-1000:]
    assert "started" in ended.output, "it must be the ballast that the limit stopped, not the start"
    assert not sandboxed_processes(), "the namespace died with its first process"


HOLD_EVERY_PROCESS = """
import os, sys, time
children = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(8)
            os._exit(0)
        children += 1
    except OSError:
        break
print("held", children, flush=True)
time.sleep(8)
"""
FORK_A_FEW = "import os\nfor _ in range(20):\n    pid = os.fork()\n    pid or os._exit(0)\n    os.waitpid(pid, 0)\n" \
             "print('forked 20')"


@needs_namespaces
def test_one_sandbox_at_its_process_limit_leaves_another_free(tmp_path):
    """Process limits are per sandbox (its own uid and cgroup), not shared by every sandbox of the machine."""
    holder = threading.Thread(target=run_sandboxed, args=("exec", HOLD_EVERY_PROCESS, []),
                              kwargs={"memory_gb": 0, "tmp_path": tmp_path}, daemon=True)  # RSS counts shared pages
    holder.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(sandboxed_processes(0).splitlines()) < MAX_PROCESSES - 10:
        time.sleep(0.2)
    assert len(sandboxed_processes(0).splitlines()) >= MAX_PROCESSES - 10, "the first sandbox holds its limit"
    ended = run_sandboxed("exec", FORK_A_FEW, [], memory_gb=1, tmp_path=tmp_path)
    holder.join()
    assert ended.status == Status.GRADED and "forked 20" in ended.output, ended.output[-500:]
    assert not sandboxed_processes()


def sandboxed_processes(patience: float = 5.0) -> str:
    """Processes of a sandbox's uid still alive after `patience` seconds (a killed namespace takes a moment)."""
    deadline = time.monotonic() + patience
    low, high = SANDBOX_UIDS
    while True:
        listed = subprocess.run(["ps", "-e", "-o", "uid=,pid=,stat=,cmd="], capture_output=True, text=True).stdout
        alive = "\n".join(line for line in listed.splitlines()
                          if low <= int(line.split()[0]) <= high and " Z" not in line)
        if not alive.strip() or time.monotonic() > deadline:
            return alive.strip()
        time.sleep(0.2)


# ---------------------------------------------------------------- supervision

def test_a_flood_without_newlines_is_cut_in_bytes():
    flood = "import os\nfor _ in range(200):\n    os.write(1, b'x' * 2**20)\nos.write(1, b'the verdict')"
    ended = supervise.run([sys.executable, "-c", flood], env=dict(os.environ), wall_seconds=60, memory_gb=0,
                          output_bytes=2**20)
    assert ended.status == Status.GRADED and ended.output.endswith("the verdict")
    assert len(ended.output) < 2**20 + 70_000 and "bytes of output cut" in ended.output


def test_the_wall_limit_kills_the_whole_tree_even_a_daemon_holding_the_pipe():
    daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\ntime.sleep(300)"
    start = time.monotonic()
    ended = supervise.run([sys.executable, "-c", daemon], env=dict(os.environ), wall_seconds=2, memory_gb=0)
    assert ended.status == Status.TIMEOUT and time.monotonic() - start < 20


def test_each_worker_slot_has_its_own_gpu_and_submissions_wait_for_a_free_one(tmp_path):
    settings = Settings("05_residual_blocks", tmp_path, "sqlite://", jobs=2, gpus=2)
    slots, busy, clashes = Slots(settings), set(), []

    def work(env: dict, _: int) -> None:
        gpu = env["CUDA_VISIBLE_DEVICES"]
        if gpu in busy:
            clashes.append(gpu)
        busy.add(gpu)
        time.sleep(0.05)
        busy.discard(gpu)

    threads = [threading.Thread(target=slots.run, args=(work, i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not clashes and sorted(env["CUDA_VISIBLE_DEVICES"] for env in slots.environments.values()) == ["0", "1"]
    if "OMP_NUM_THREADS" not in os.environ:
        assert slots.environments[0]["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: nothing to refuse")
def test_require_gpu_refuses_to_grade_on_the_cpu(tmp_path):
    folder = tmp_path / "submitted" / "ann" / "05_residual_blocks"
    folder.mkdir(parents=True)
    (folder / "05_residual_blocks.ipynb").write_text(CORPUS["solved"].build())
    done = subprocess.run(["make", "--no-print-directory", "autograde", "A=05_residual_blocks", "REQUIRE_GPU=1",
                           f"VENV={Path(sys.executable).parent.parent}"], cwd=REPOSITORY, capture_output=True,
                          text=True, env={**os.environ, "GRADING_ROOT": str(tmp_path)})
    assert done.returncode != 0 and "sees no CUDA GPU" in done.stdout
    assert not (tmp_path / "autograded").exists() and not (tmp_path / "report.csv").exists()


@pytest.mark.parametrize(("setup", "says"), [
    ("", "Nothing to grade"),
    ("missing", "does not exist"),
    ("typo", "No assignment '04_residual_blockz'"),
])
def test_instructor_mistakes_get_a_sentence_and_a_non_zero_exit(tmp_path, setup, says):
    root = tmp_path / "missing" if setup == "missing" else tmp_path
    assignment = "04_residual_blockz" if setup == "typo" else "05_residual_blocks"
    done = subprocess.run(["make", "--no-print-directory", "autograde", f"A={assignment}",
                           f"VENV={Path(sys.executable).parent.parent}"], cwd=REPOSITORY, capture_output=True,
                          text=True, env={**os.environ, "GRADING_ROOT": str(root)})
    assert done.returncode != 0 and says in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_which_statuses_keep_a_score():
    assert [s for s in Status if s.keeps_score] == [Status.GRADED, Status.TAMPERED, Status.OUT_OF_MEMORY]


# ---------------------------------------------------------------- review flags

@pytest.mark.parametrize(("source", "flag"), [
    ("import gc\nfor o in gc.get_objects(): pass", "the garbage collector"),
    ("f.__code__ = g.__code__", "code-object assignment"),
    ("import sys\nsys.settrace(t)", "a trace hook"),
    ("import sys\nframe = sys._getframe(1)", "frame introspection"),
    ("get_ipython().input_transformers_post.append(t)", "IPython's input transformers"),
    ("class T(torch.Tensor):\n    __torch_function__ = f", "tensor dispatch"),
    ("import ctypes", "ctypes"),
    ("torch.allclose = lambda *a: True", "assignment to torch.allclose"),
    ("import residual_course.checks.report as report\nreport.run = None", "assignment to report.run"),
    ("from residual_course import checks\nchecks.residual_blocks.x = None", "assignment to checks.residual_blocks.x"),
    ("if torch.compiler.is_exporting():\n    pass", "torch.export's tracing flag"),
    ("from torch._dynamo import is_compiling", "torch.compile's tracing flag"),
    ("import autograder.grading.decision.student_side as s", "the grader's own code"),
    ("import sys\nside = sys.modules['__main__'].SESSION", "sys.modules"),
    ("getattr(get_ipython(), 'set_' + 'custom_exc')", "getattr() with a computed name"),
    ("m = __import__('autogr' + 'ader')", "__import__()"),
    ("getattr(get_ipython(), 'set_custom_exc')(())", "IPython's exception handler (named in a string)"),
])
def test_suspicious_constructs_are_named(source, flag):
    assert flag in review_reasons({"basic-block": source})[0]


def test_ordinary_answers_raise_no_flag():
    assert review_reasons({"a": "class B(nn.Module):\n    def forward(self, x):\n        return torch.relu(x)",
                           "d": "for m in self.modules():\n    print(m.training, type(m).__module__)",
                           "e": "act = getattr(nn, 'ReLU')()\nfor i in range(2):\n    setattr(self, f'c{i}', c)",
                           "b": "%matplotlib inline\nimport math\nprint(sys.version)",
                           "c": "import math as m\nclass C:\n    def f(self):\n        self.m = m.pi"}) == []


# ---------------------------------------------------------------- feedback

SOURCE = "check(x)\n### BEGIN HIDDEN TESTS\nassert secret(x) == 42\n### END HIDDEN TESTS\nprint('after')\n"


def test_hidden_tests_are_replaced_by_a_placeholder():
    shown = hide_tests(SOURCE)
    assert "secret" not in shown
    assert shown.startswith("check(x)\n# (hidden tests") and shown.endswith("print('after')\n")


def test_feedback_keeps_the_error_message_but_not_the_quoted_code():
    cell = nbformat.v4.new_code_cell(SOURCE, outputs=[nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="the answer is 42", traceback=["----> 3 assert secret(x) == 42"])])
    shown, _ = HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert shown.outputs[0].traceback == ["AssertionError: the answer is 42"]
    assert "secret" not in shown.source


def test_math_becomes_mathml_outside_code():
    html = math_to_mathml("A block computes $H(x) = F(x) + x$; `cost = $5`, and\n$$\\frac{a}{b}$$")
    assert html.count("<math") == 2 and 'display="block"' in html and "`cost = $5`" in html


def test_a_check_printed_twice_shows_once_and_names_its_properties():
    block = "Checking B on cpu (no GPU found)\n  PASS  shape fits\n  FAIL  relu after add\n        hint: do x\n"
    cell = nbformat.v4.new_code_cell("check(B)", outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                                  text=block + block)])
    shown, _ = ReadableFeedback().preprocess_cell(cell, {}, 0)
    assert shown.outputs[0].text == block == once(block + block)
    assert shown.metadata["checks"] == ["shape fits", "relu after add"]
