"""The trusted decision's defences, one at a time: a block exercise's graph may compute only what a block needs, the
graph must be what the module computes when it runs, and where a class comes from is read from its code."""

import pytest
import torch
from fixtures.residual_blocks import (
    FunctionalBasicBlock,
    KuangliuPreActBlock,
    TextbookBasicBlock,
    TorchvisionBasicBlock,
    TorchvisionBottleneck,
)
from test_grading_units import IMPORTS, answer, decision, graded_cell, rebuilt
from torch import nn

from autograder.grading.decision import protocol
from autograder.grading.decision.exercises import EXERCISES
from autograder.grading.decision.graphs import GraphError, export_graph
from autograder.grading.decision.wire import WireError


def graph_of(module: nn.Module, training: bool, shape: tuple[int, ...] = (3, 8, 7, 7)) -> dict:
    return export_graph(module.train(training), (torch.randn(shape),), [])


class SeedStyle(nn.Module):
    """The article's ResidualBlock (its typo fixed): nn.Sequential branch, shortcut in a Sequential, in-place ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, padding="same", bias=False),
                                  nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.left(x)
        out += self.shortcut(x)
        return torch.clamp(out, min=0)


class ScaledByOne(TextbookBasicBlock):
    def forward(self, x):
        return super().forward(x.contiguous()) * 1.0 / 1.0


class Gated(TextbookBasicBlock):
    def forward(self, x):
        return super().forward(x) * torch.sigmoid(x)  # one computed tensor times another: a gate


@pytest.mark.parametrize("block", [TextbookBasicBlock(8, 8), TextbookBasicBlock(8, 16, 2), ScaledByOne(8, 8),
                                   FunctionalBasicBlock(8, 16, 2), TorchvisionBasicBlock(8, 16, 2), SeedStyle(8, 8),
                                   SeedStyle(8, 16, 2)],
                         ids=["textbook", "textbook-projection", "scaled-by-one", "functional-same-padding",
                              "torchvision", "seed", "seed-projection"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_honest_blocks_in_every_style_compute_only_what_a_block_needs(block, training):
    EXERCISES["BasicBlock"].check(graph_of(block, training), "BasicBlock")


def test_other_block_exercises_admit_their_correct_answers():
    EXERCISES["Bottleneck"].check(graph_of(TorchvisionBottleneck(8, 4, 2), True), "Bottleneck")
    EXERCISES["PreActBlock"].check(graph_of(KuangliuPreActBlock(8, 16, 2), True), "PreActBlock")


class ZeroProbe(TextbookBasicBlock):
    def forward(self, x):
        zero = torch.stack([(p == 0).all() for p in self.parameters()]).all()
        return torch.where(zero, torch.relu(x), super().forward(x))


class ReadsItsWeight(TextbookBasicBlock):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(cin, cout, stride)
        self.offset = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return super().forward(x) + self.offset


class OverwritesItsInput(TextbookBasicBlock):
    def forward(self, x):
        out = super().forward(x)
        x.add_(out)
        return out


class HoldsAConstant(TextbookBasicBlock):
    def forward(self, x):
        return super().forward(x) + torch.tensor(0.0)


@pytest.mark.parametrize(("block", "refused"), [
    (ZeroProbe(8, 8), "runs aten::"),
    (ReadsItsWeight(8, 8), "not as a layer's weight"),
    (OverwritesItsInput(8, 8), "writes into its input"),
    (HoldsAConstant(8, 8), "constant tensor"),
    (Gated(8, 8), "runs aten::mul.Tensor"),
])
def test_a_block_graph_that_could_recognise_a_probe_is_refused(block, refused):
    with pytest.raises(GraphError, match=refused):
        EXERCISES["BasicBlock"].check(graph_of(block, True), "BasicBlock")


TRACED_DIFFERENTLY = """
class BasicBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv(x)
        if torch.compiler.is_exporting():  # what the grader traces...
            return torch.relu(out + x)
        return torch.relu(out) + x  # ...and what the learner's own runs compute
"""


def test_a_module_that_computes_one_thing_when_traced_and_another_when_run_is_a_mismatch(tmp_path):
    result = decision(tmp_path, IMPORTS, answer(TRACED_DIFFERENTLY, "BasicBlock"),
                      graded_cell("uses", "BasicBlock()(torch.randn(2, 2, 5, 5))"))
    assert result.mismatches and "computes something else when it runs" in result.mismatches[0]
    assert result.verdicts["uses"]  # and nothing was awarded on that graph


def test_an_honest_module_is_verified_and_graded(tmp_path):
    honest = TRACED_DIFFERENTLY.replace("if torch.compiler.is_exporting():", "if True:")
    result = decision(tmp_path, IMPORTS, answer(honest, "BasicBlock"),
                      graded_cell("uses", "assert BasicBlock()(torch.randn(2, 2, 5, 5)).shape == (2, 2, 5, 5)"))
    assert result.verdicts == {"uses": None} and not result.mismatches and not result.export_failures


def test_a_deep_copy_of_a_lent_module_is_the_students_own(tmp_path):
    """copy.deepcopy of a trusted network on the student's side computes natively, apart from the original."""
    surgery = ("import copy\ndef cleared(model):\n    new = copy.deepcopy(model)\n    with torch.no_grad():\n"
               "        new[0].weight.zero_()\n    return new\n")
    result = decision(tmp_path, IMPORTS, answer(surgery, "cleared"), graded_cell(
        "copy", "net = nn.Sequential(nn.Linear(3, 3), nn.ReLU())\nx = torch.randn(5, 3)\nbefore = net(x)\n"
                "new = cleared(net)\nassert torch.equal(net(x), before), 'the original changed'\n"
                "assert torch.allclose(new(x), torch.relu(net[0].bias).expand(5, 3)), 'the copy is not cleared'"))
    assert result.verdicts == {"copy": None} and not result.mismatches


def test_a_students_module_comes_back_as_grading_left_it(tmp_path):
    """A student module passed back to the student's code carries the statistics and mode the test gave it."""
    source = "def make():\n    return nn.Sequential(nn.BatchNorm1d(4))\n" \
             "def statistics(model):\n    return model[0].running_mean.clone(), model.training\n"
    result = decision(tmp_path, IMPORTS, answer(source, "make", "statistics"), graded_cell(
        "back", "m = make()\nm(torch.randn(16, 4) + 3)\nm.eval()\nmean, training = statistics(m)\n"
                "assert torch.equal(mean, dict(m.named_buffers())['0.running_mean']) and not training"))
    assert result.verdicts == {"back": None}


def test_a_function_of_labels_is_verified_on_labels_in_range(tmp_path):
    """Integer inputs (labels for 3 classes) reach the verifying eager run with the call's own values, in range."""
    loss = "def loss(z, y):\n    return (torch.logsumexp(z, 1) - z.gather(1, y.unsqueeze(1)).squeeze(1)).mean()\n"
    result = decision(tmp_path, IMPORTS, answer(loss, "loss"),
                      graded_cell("three", "z = torch.randn(7, 3)\ny = torch.arange(7) % 3\n"
                                           "assert torch.allclose(loss(z, y), F.cross_entropy(z, y))"))
    assert result.verdicts == {"three": None} and not result.mismatches


RELABELLED = """
from torchvision.models import resnet as _tv

_tv.BasicBlock.__module__ = "__main__"


class BasicBlock(_tv.BasicBlock):
    pass


BasicBlock.__module__ = "__main__"
"""


def test_a_ready_made_class_relabelled_as_the_students_is_found_and_noted(tmp_path):
    result = decision(tmp_path, IMPORTS, answer(RELABELLED, "BasicBlock"),
                      graded_cell("origin", "from residual_course.checks.subjects import ready_made_classes\n"
                                            "assert not ready_made_classes(BasicBlock(4, 4)), 'ready-made'"))
    assert result.verdicts["origin"] == "AssertionError: ready-made"
    assert any("torchvision.models.resnet.BasicBlock calls itself __main__" in note for note in result.notes)


def test_the_protocol_refuses_malformed_messages():
    with pytest.raises(WireError, match="unknown request"):
        protocol.parse_request({"op": "exec", "code": "import os"})
    with pytest.raises(WireError, match="without target"):
        protocol.parse_request({"op": "call", "args": [], "kwargs": {"dict": {}}})
    with pytest.raises(WireError, match="not <class 'int'>"):
        protocol.parse_request({"op": "verify", "target": True, "inputs": [], "state": {}, "training": True,
                                "seed": 1})
    with pytest.raises(WireError, match="unexpected reply"):
        protocol.parse_reply({"reply": "graph", "graph": {}}, protocol.Outputs)


def test_a_rebuilt_module_first_run_in_eval_mode_uses_its_running_statistics():
    block = TextbookBasicBlock(4, 4).eval()
    with torch.no_grad():
        for norm in (block.b1, block.b2):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    copy = rebuilt(block, "BasicBlock").eval()  # its layers are found on this first, eval-mode, pass
    x = torch.randn(3, 4, 5, 5)
    assert torch.allclose(copy(x), block(x), atol=1e-5)


REWRITES_THE_STUDENT_SIDE = """
import sys as _sys
_side = next(m.SESSION for m in list(_sys.modules.values()) if hasattr(m, "SESSION"))
_side._export = lambda message: None  # would answer with another module's graph
"""


def test_student_code_that_rewrites_the_student_side_has_nothing_graded(tmp_path):
    result = decision(tmp_path, IMPORTS, answer("def double(x):\n    return 2 * x\n" + REWRITES_THE_STUDENT_SIDE,
                                                "double"),
                      graded_cell("uses", "assert torch.equal(double(torch.ones(2)), torch.full((2,), 2.0))"))
    assert result.mismatches and "rewrote the grader's own code" in result.mismatches[0]
    assert "StudentSide._export" in result.mismatches[0]
    assert result.verdicts["uses"].startswith("not decided")
