"""Checks for lesson 07: a learner-designed residual network for Fashion-MNIST, judged by behaviour alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, expect_device_and_gradient, name_of, random_tensor, run
from residual_course.data import DataSet
from residual_course.runtime import seed_everything
from residual_course.training import evaluate, fit

ModelFactory = Callable[[], nn.Module]

PARAMETER_BUDGET = 100_000
NUM_CLASSES = 10
# How every submission is trained for grading: fixed, so scores compare designs, not training recipes.
# fit() shrinks it in fast mode (autograding, CI) to at most 2 epochs of 30 steps.
GRADING_RECIPE = {"epochs": 3, "lr": 1e-3, "optimizer": "adam", "batch_size": 128, "weight_decay": 0.0, "seed": 0}
_ADD_NODES = ("AddBackward0", "AddBackward1")


def grading_accuracy(factory: ModelFactory, data: DataSet, seed: int = 0) -> float:
    """Build a fresh model with a fixed seed, train it with GRADING_RECIPE on data.train, return data.test accuracy.

    cuDNN is asked for deterministic convolutions meanwhile, so that grading on a GPU gives the same score twice.
    """
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        seed_everything(seed)
        model = factory()
        fit(model, data, **GRADING_RECIPE, progress=False)
        return evaluate(model, data.test)[1]
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def count_trainable(model: nn.Module) -> int:
    """Trainable parameters: what the budget limits."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _forward(model: nn.Module, images: Tensor, call: str) -> Tensor:
    """Run the model and insist on a (batch, 10) float tensor of logits."""
    expected = (len(images), NUM_CLASSES)
    output = run(model, images, call, returns=f"one tensor of shape {expected}")
    if tuple(output.shape) != expected:
        raise PropertyFailed(f"{call} maps images {tuple(images.shape)} to {tuple(output.shape)}, expected "
                             f"{expected}: end with global average pooling (or a flatten) and nn.Linear(..., 10)")
    if not output.is_floating_point():
        raise PropertyFailed(f"{call} returned {output.dtype} values; return float logits, not class indices")
    return output


def _additive_shortcuts(output: Tensor, parameters: set[int]) -> int:
    """How many additions in the autograd graph of `output` have the form t + f(t), f using model parameters."""
    nodes, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    found = 0
    for node in nodes:
        if type(node).__name__ not in _ADD_NODES:
            continue
        operands = [operand for operand, _ in node.next_functions if operand is not None]
        if len(operands) == 2 and operands[0] is not operands[1] and (
                _branch_reaches(operands[1], operands[0], parameters)
                or _branch_reaches(operands[0], operands[1], parameters)):
            found += 1
    return found


def _branch_reaches(branch: object, shortcut: object, parameters: set[int]) -> bool:
    """True when `branch` is computed from `shortcut`'s tensor through at least one op that uses a parameter."""
    seen, stack, reached, uses_parameters = set(), [branch], False, False
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node is shortcut:
            reached = True
            continue  # what feeds the shortcut's tensor is not part of the branch
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in parameters:
            uses_parameters = True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return reached and uses_parameters


def capstone_properties(factory: ModelFactory, budget: int = PARAMETER_BUDGET) -> list[Property]:
    """Properties of MyResNet(): (N, 1, 28, 28) images -> (N, 10) logits, under the budget, with a residual addition."""
    call = f"{name_of(factory, 'model')}()"

    def output(device: torch.device) -> None:
        model = build(factory, device=device, call=call)
        for mode in ("train", "eval"):
            getattr(model, mode)()
            for batch in (2, 5):
                with torch.no_grad():
                    _forward(model, random_tensor(device, batch, 1, 28, 28), f"{call} in {mode}() mode")

    def logits(device: torch.device) -> None:
        model = build(factory, device=device, call=call).eval()
        with torch.no_grad():
            scores = _forward(model, random_tensor(device, 6, 1, 28, 28), call)
        if (scores >= 0).all() and torch.allclose(scores.sum(dim=1), torch.ones(6, device=device), atol=1e-4):
            raise PropertyFailed("every row is non-negative and sums to 1, so the model returns probabilities: "
                                 "return the raw logits of the last nn.Linear (no softmax); cross-entropy applies "
                                 "log-softmax itself, and a softmax before it squashes the gradient")

    def within_budget(device: torch.device) -> None:
        got = count_trainable(build(factory, device=device, call=call))
        if got > budget:
            raise PropertyFailed(f"{call} has {got:,} trainable parameters, {got - budget:,} over the budget of "
                                 f"{budget:,}: narrow the widest stage (a 3x3 conv costs 9 * C_in * C_out), or "
                                 "use global average pooling instead of flatten before the classifier")
        if got == 0:
            raise PropertyFailed(f"{call} has no trainable parameters")

    def on_device(device: torch.device) -> None:
        model = build(factory, device=device, call=call).train()
        expect_device_and_gradient(model, random_tensor(device, 4, 1, 28, 28), device, call, _forward)

    def shortcut(device: torch.device) -> None:
        model = build(factory, device=device, call=call).eval()
        images = random_tensor(device, 2, 1, 28, 28).requires_grad_(True)
        scores = _forward(model, images, call)
        if _additive_shortcuts(scores, {id(p) for p in model.parameters()}) == 0:
            raise PropertyFailed("no addition of the form x + F(x) runs in the forward pass: a residual block adds "
                                 "its input x, unchanged, to its branch output (out = relu(branch(x) + x)); a "
                                 "projection shortcut alone (conv1x1(x) + branch(x)) does not count, so keep at least "
                                 "one block whose shape does not change")

    return [
        Property("output", "maps (N, 1, 28, 28) images to (N, 10) in train() and eval() mode", output),
        Property("logits", "returns logits, not softmax probabilities", logits),
        Property("budget", f"at most {budget:,} trainable parameters", within_budget),
        Property("device", "runs on the device and passes the gradient to its input", on_device),
        Property("shortcut", "contains an identity shortcut: some tensor x is added to F(x)", shortcut),
    ]


def check_capstone(factory: ModelFactory, only: str | list[str] | None = None,
                   budget: int = PARAMETER_BUDGET) -> None:
    """Check a learner's capstone model class and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "model"), capstone_properties(factory, budget), only)
