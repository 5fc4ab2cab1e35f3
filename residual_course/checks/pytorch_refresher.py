"""Checks for lesson 00: the MLP classifier, one training step and cross-entropy from logits, judged by behaviour."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import Clash, build, expect_on_device, name_of, random_tensor, run
from residual_course.formulas import mlp_params

ModelFactory = Callable[..., nn.Module]
TrainStep = Callable[[nn.Module, torch.optim.Optimizer, Tensor, Tensor], object]
LossFunction = Callable[[Tensor, Tensor], Tensor]
TrainEpoch = Callable[..., object]  # train_epoch(model, optimizer, images, labels, batch_size=..., step=...)


# ---------------------------------------------------------------- MLP

check_mlp = Check("MLP", "Check a learner's MLP(in_features=784, hidden_features=(256, 128), num_classes=10) "
                  "(images or vectors in, a ReLU between Linear layers, raw logits out, on the device) and print "
                  "one PASS/FAIL line per property.")


_SIZE_CLASH = Clash(("shapes cannot be multiplied", "size mismatch"), "at a Linear layer",
                    "flatten each image to a vector first (nn.Flatten() or x.flatten(1)), and chain the layer sizes "
                    "in_features -> hidden... -> num_classes")


def _build_mlp(factory: ModelFactory, device: torch.device, **kwargs: object) -> nn.Module:
    """Instantiate the learner's model on the device, insisting that it is an nn.Module."""
    arguments = ", ".join(f"{key}={value}" for key, value in kwargs.items())
    return build(factory, device=device, call=f"{name_of(factory, 'MLP')}({arguments})", **kwargs)


def _run(model: nn.Module, inputs: Tensor, call: str) -> Tensor:
    """Forward pass that turns a shape clash into a sentence about flattening and layer sizes."""
    return run(model, inputs, call, [_SIZE_CLASH], returns="the logits tensor")


@check_mlp.property("shape", "(N, 1, 28, 28) images and (N, 784) vectors give (N, num_classes)")
def _expect_mlp_shapes(factory: ModelFactory, device: torch.device) -> None:
    """Images and flat vectors both give one row of num_classes logits per example."""
    model = _build_mlp(factory, device)
    for inputs in (random_tensor(device, 5, 1, 28, 28), random_tensor(device, 5, 784)):
        output = _run(model, inputs, "MLP()")
        if tuple(output.shape) != (5, 10):
            raise PropertyFailed(f"MLP() maps {tuple(inputs.shape)} to {tuple(output.shape)}, expected (5, 10): "
                                 "flatten to (batch, 784) first and end with a Linear layer to num_classes")
    model = _build_mlp(factory, device, in_features=12, hidden_features=(7,), num_classes=3)
    output = _run(model, random_tensor(device, 4, 12), "MLP(12, (7,), 3)")
    if tuple(output.shape) != (4, 3):
        raise PropertyFailed(f"MLP(12, (7,), 3) maps (4, 12) to {tuple(output.shape)}, expected (4, 3): use the "
                             "constructor's in_features, hidden_features and num_classes, not fixed sizes")


@check_mlp.property("parameters", "parameter count = sum of (a + 1) * b over consecutive layer sizes")
def _expect_mlp_params(factory: ModelFactory, device: torch.device) -> None:
    """The parameter count equals the formula for the default sizes and for other sizes."""
    for kwargs in ({}, {"in_features": 12, "hidden_features": (7, 5, 9), "num_classes": 3}):
        model = _build_mlp(factory, device, **kwargs)
        got = sum(p.numel() for p in model.parameters())
        expected = mlp_params(**kwargs)
        if got == expected:
            continue
        sizes = [kwargs.get("in_features", 784), *kwargs.get("hidden_features", (256, 128)),
                 kwargs.get("num_classes", 10)]
        call = f"MLP({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        if got == 0:
            hint = ("it has no parameters: keep the layers in nn.Sequential or nn.ModuleList (a plain Python list "
                    "hides them from .parameters() and .to())")
        elif got == expected - sum(sizes[1:]):
            hint = "its Linear layers have no biases: keep the default bias=True"
        else:
            hint = (f"use one nn.Linear per consecutive pair of sizes {sizes}, i.e. "
                    f"{' + '.join(f'({a}+1)*{b}' for a, b in pairwise(sizes))}")
        raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected:,}: {hint}")


def _centred_scores(output: Tensor) -> Tensor:
    """Per-row logits up to a constant: undo a final softmax (log), then remove each row's mean.

    A final softmax or log_softmax only shifts or exponentiates the scores, so what this returns is the same
    function of the input as without it: the ReLU test below judges the hidden layers, not the output's form.
    """
    if (output > 0).all() and torch.allclose(output.sum(dim=1), torch.ones_like(output[:, 0]), atol=1e-4):
        output = output.log()
    return output - output.mean(dim=1, keepdim=True)


@check_mlp.property("relu", "a ReLU between consecutive Linear layers")
def _expect_relu_between_layers(factory: ModelFactory, device: torch.device) -> None:
    """With biases zeroed a ReLU MLP is positively homogeneous, f(2x) = 2 f(x), but not linear: f(-x) != -f(x)."""
    model = copy.deepcopy(_build_mlp(factory, device, in_features=12, hidden_features=(16, 16), num_classes=5))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.zero_()
        inputs = random_tensor(device, 64, 12)
        base = _centred_scores(_run(model, inputs, "MLP(12, (16, 16), 5)"))
        doubled = _centred_scores(model(2 * inputs))
        negated = _centred_scores(model(-inputs))
    if torch.allclose(negated, -base, rtol=1e-4, atol=1e-5):
        raise PropertyFailed("the model is linear in its input (f(-x) = -f(x) with zero biases): put a ReLU after "
                             "every hidden Linear layer, otherwise the stacked layers collapse into a single Linear")
    if not torch.allclose(doubled, 2 * base, rtol=1e-4, atol=1e-5):
        raise PropertyFailed("with zero biases f(2x) != 2 f(x), which a ReLU network satisfies: use ReLU (not "
                             "sigmoid or tanh) between the Linear layers")


@check_mlp.property("logits", "returns raw logits (no softmax, log_softmax or ReLU at the end)")
def _expect_logits(factory: ModelFactory, device: torch.device) -> None:
    """The output is raw scores: not probabilities, not log-probabilities, free to be negative."""
    model = _build_mlp(factory, device)
    with torch.no_grad():
        output = _run(model, random_tensor(device, 64, 1, 28, 28), "MLP()")
    ones = torch.ones_like(output[:, 0])
    if (output >= 0).all() and torch.allclose(output.sum(dim=1), ones, atol=1e-4):
        raise PropertyFailed("every row sums to 1: the model ends in softmax. Return the last Linear layer's output "
                             "(logits): F.cross_entropy / nn.CrossEntropyLoss applies log_softmax itself, so a "
                             "softmax inside the model is applied twice and squashes the loss and its gradient")
    if torch.allclose(torch.logsumexp(output, dim=1), torch.zeros_like(ones), atol=1e-4):
        raise PropertyFailed("every row is a log-probability vector (logsumexp = 0): the model ends in log_softmax. "
                             "Return the last Linear layer's output (logits): F.cross_entropy / nn.CrossEntropyLoss "
                             "applies log_softmax itself")
    if (output >= 0).all():
        raise PropertyFailed("every output is >= 0: the model ends in an activation (ReLU, sigmoid, ...). Logits "
                             "must be free to be negative: end with the last Linear layer")


@check_mlp.property("gradient", "the loss gradient reaches the first layer")
def _expect_mlp_gradient(factory: ModelFactory, device: torch.device) -> None:
    """The loss gradient reaches every parameter and the input image."""
    model = _build_mlp(factory, device)
    inputs = random_tensor(device, 8, 1, 28, 28).requires_grad_(True)
    labels = torch.arange(8, device=device) % 10
    F.cross_entropy(_run(model, inputs, "MLP()"), labels).backward()
    missing = sum(p.grad is None for p in model.parameters())
    if inputs.grad is None or missing or inputs.grad.abs().sum() == 0:
        raise PropertyFailed("the loss gradient does not reach the first layer and the input: avoid .detach(), "
                             ".data, .numpy() and torch.no_grad() inside forward")


@check_mlp.property("device", "parameters and output on the device")
def _expect_mlp_device(factory: ModelFactory, device: torch.device) -> None:
    """After .to(device) every parameter and the output live on the course device."""
    expect_on_device(_build_mlp(factory, device), random_tensor(device, 2, 1, 28, 28), device, "MLP()", _run)


# ---------------------------------------------------------------- train_step

check_train_step = Check("train_step", "Check a learner's train_step(model, optimizer, images, labels) -> float "
                         "(the loss before the step, one zero_grad-forward-backward-step, as loss.item()) and "
                         "print one PASS/FAIL line per property.")


def _toy_problem(device: torch.device) -> tuple[nn.Module, Tensor, Tensor]:
    """A small deterministic classifier (no BatchNorm, no dropout) and a batch, all on the device."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)).to(device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * random_tensor(device, *parameter.shape, seed=parameter.numel()))
    images = random_tensor(device, 32, 3, 4, seed=1)
    labels = torch.arange(32, device=device) % 5
    return model, images, labels


def _toy_problem_and_reference(device: torch.device, steps: int) -> tuple[nn.Module, Tensor, Tensor, nn.Module]:
    """The toy problem, and what `steps` correct plain-SGD steps (lr=0.1) make of a copy of its model."""
    model, images, labels = _toy_problem(device)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(reference(images), labels).backward()
        optimizer.step()
    return model, images, labels, reference


def _same_parameters(model: nn.Module, reference: nn.Module) -> bool:
    """Whether two models hold the same parameter values, up to float32 rounding."""
    pairs = zip(model.parameters(), reference.parameters(), strict=True)
    return all(torch.allclose(a.detach(), b.detach(), rtol=1e-4, atol=1e-6) for a, b in pairs)


def _as_number(result: object, call: str) -> float:
    """Read the returned loss as a number, whatever its type, or say what came back instead."""
    if isinstance(result, Tensor):
        result = result.detach()  # a loss tensor still attached to its graph is read without a warning
    try:
        return float(result)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        raise PropertyFailed(f"{call} returned {type(result).__name__} {result!r:.60}; return the loss as a "
                             "number, loss.item()") from None


@check_train_step.property("float", "returns the loss as a Python float")
def _expect_float(function: TrainStep, device: torch.device) -> None:
    """The loss comes back as a Python float, detached from the graph (loss.item())."""
    model, images, labels = _toy_problem(device)
    result = function(model, torch.optim.SGD(model.parameters(), lr=0.1), images, labels)
    if not isinstance(result, float):
        raise PropertyFailed(f"train_step returned a {type(result).__name__}, expected a Python float: return "
                             "loss.item(), which also frees the graph (a tensor kept in a list holds it alive)")


@check_train_step.property("loss value", "returns the batch's cross-entropy before the step")
def _expect_loss_value(function: TrainStep, device: torch.device) -> None:
    """The returned loss is the batch's mean cross-entropy before the step."""
    model, images, labels, stepped = _toy_problem_and_reference(device, steps=1)
    with torch.no_grad():
        expected = F.cross_entropy(model(images), labels).item()
        after_step = F.cross_entropy(stepped(images), labels).item()
    result = _as_number(function(model, torch.optim.SGD(model.parameters(), lr=0.1), images, labels), "train_step")
    if abs(result - expected) <= 1e-4 * max(1.0, abs(expected)):
        return
    if abs(result - after_step) <= 1e-4 * max(1.0, abs(after_step)):
        raise PropertyFailed(f"train_step returned {result:.4f}, the loss *after* the step; return the loss of the "
                             f"forward pass that was used for backward ({expected:.4f})")
    raise PropertyFailed(f"train_step returned {result:.4f}, but the batch's cross-entropy is {expected:.4f}: compute "
                         "F.cross_entropy(model(images), labels) on the raw logits (no softmax) and return its .item()")


@check_train_step.property("one step", "makes exactly one optimiser step on the cross-entropy gradient")
def _expect_one_step(function: TrainStep, device: torch.device) -> None:
    """From a fresh model, one call makes exactly one correct SGD step."""
    model, images, labels, expected = _toy_problem_and_reference(device, steps=1)
    before = copy.deepcopy(model)
    function(model, torch.optim.SGD(model.parameters(), lr=0.1), images, labels)
    if all(torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters(), strict=True)):
        raise PropertyFailed("the parameters did not change: call loss.backward() and then optimizer.step()")
    if not _same_parameters(model, expected):
        raise PropertyFailed("the parameters changed, but not as one SGD step on the cross-entropy gradient does: "
                             "compute F.cross_entropy(model(images), labels) on the logits, call backward() once, "
                             "then optimizer.step() once")


@check_train_step.property("learns", "repeated steps on one batch drive its loss down")
def _expect_learning(function: TrainStep, device: torch.device) -> None:
    """Repeated steps on one batch with Adam drive its loss down."""
    model, images, labels = _toy_problem(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = [_as_number(function(model, optimizer, images, labels), "train_step") for _ in range(30)]
    if not losses[-1] < 0.5 * losses[0]:
        raise PropertyFailed(f"30 Adam steps on one batch took the loss from {losses[0]:.3f} to {losses[-1]:.3f}; "
                             "it should at least halve: check the order zero_grad, forward, loss, backward, step")


@check_train_step.property("zero grad", "a second call does not re-apply the first call's gradient")
def _expect_no_stale_gradients(function: TrainStep, device: torch.device) -> None:
    """Two calls on the same batch make two correct steps: the first step's gradient is not applied twice."""
    model, images, labels, expected = _toy_problem_and_reference(device, steps=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    function(model, optimizer, images, labels)
    function(model, optimizer, images, labels)
    if not _same_parameters(model, expected):
        raise PropertyFailed("the second call's update is wrong: PyTorch *adds* each backward() into .grad, so "
                             "call optimizer.zero_grad() before loss.backward() (or the old gradient is applied "
                             "again)")


# ---------------------------------------------------------------- train_epoch

check_train_epoch = Check("train_epoch", "Check a learner's train_epoch(model, optimizer, images, labels, "
                          "batch_size, step) -> float (every example once per epoch, in shuffled batches, the "
                          "mean loss over examples) and print one PASS/FAIL line per property.")


_EPOCH_SIZE, _EPOCH_BATCH, _EPOCH_CLASSES = 50, 16, 7  # batches of 16, 16, 16 and 2


class _RecordingStep:
    """A train_step stand-in that records each batch it is given (every image carries its index in its first pixel)
    and returns the batch's mean index, so the epoch's mean over examples is known exactly."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[int], list[int]]] = []

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor) -> float:
        ids = images.reshape(len(images), -1)[:, 0].round().long()
        self.batches.append((ids.tolist(), labels.tolist()))
        return ids.double().mean().item()


def _run_epoch(function: TrainEpoch, device: torch.device) -> tuple[object, _RecordingStep]:
    """One call of the learner's train_epoch on numbered images, with the recording step."""
    images = torch.zeros(_EPOCH_SIZE, 1, 2, 2, device=device)
    images[:, 0, 0, 0] = torch.arange(_EPOCH_SIZE, device=device, dtype=torch.float32)
    labels = torch.arange(_EPOCH_SIZE, device=device) % _EPOCH_CLASSES
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, _EPOCH_CLASSES)).to(device)
    step = _RecordingStep()
    result = function(model, torch.optim.SGD(model.parameters(), lr=0.1), images, labels, batch_size=_EPOCH_BATCH,
                      step=step)
    if not step.batches:
        raise PropertyFailed("train_epoch never called `step`: make one call step(model, optimizer, images, labels) "
                             "per mini-batch, with the step it is given")
    return result, step


@check_train_epoch.property("every example once", "each example is in exactly one batch, with its own label")
def _expect_every_example_once(function: TrainEpoch, device: torch.device) -> None:
    """The epoch's batches hold every example exactly once, each image with its own label."""
    _, step = _run_epoch(function, device)
    seen = [index for ids, _ in step.batches for index in ids]
    if sorted(seen) != list(range(_EPOCH_SIZE)):
        missing, twice = set(range(_EPOCH_SIZE)) - set(seen), {i for i in seen if seen.count(i) > 1}
        raise PropertyFailed(f"over one epoch of {_EPOCH_SIZE} examples in batches of {_EPOCH_BATCH}, step saw "
                             f"{len(seen)} examples ({len(missing)} never, {len(twice)} more than once): visit each "
                             "example exactly once, and keep the last, smaller batch")
    for ids, labels in step.batches:
        if labels != [index % _EPOCH_CLASSES for index in ids]:
            raise PropertyFailed("the labels of a batch are not those of its images: shuffle both with one and the "
                                 "same order (index images and labels with the same indices)")


@check_train_epoch.property("batches", "one step per batch of batch_size examples (the last may be smaller)")
def _expect_batches(function: TrainEpoch, device: torch.device) -> None:
    """Batches have batch_size examples, except one smaller last batch."""
    _, step = _run_epoch(function, device)
    sizes = [len(ids) for ids, _ in step.batches]
    expected = [_EPOCH_BATCH] * (_EPOCH_SIZE // _EPOCH_BATCH) + [_EPOCH_SIZE % _EPOCH_BATCH]
    if sizes != expected:
        raise PropertyFailed(f"with {_EPOCH_SIZE} examples and batch_size={_EPOCH_BATCH} the batches should hold "
                             f"{expected} examples, one step call each; they held {sizes}")


@check_train_epoch.property("shuffled", "a new random order every epoch")
def _expect_shuffled(function: TrainEpoch, device: torch.device) -> None:
    """The examples come in a random order, and a new one every epoch."""
    orders = [[index for ids, _ in _run_epoch(function, device)[1].batches for index in ids] for _ in range(2)]
    if orders[0] == sorted(orders[0]):
        raise PropertyFailed("the examples came in the order they are stored: shuffle them every epoch "
                             "(a stored order, e.g. all the shoes first, biases every step)")
    if orders[0] == orders[1]:
        raise PropertyFailed("two epochs visited the examples in the same order: draw a new order in every call")


@check_train_epoch.property("mean", "returns the mean loss over the epoch's examples, as a float")
def _expect_mean_loss(function: TrainEpoch, device: torch.device) -> None:
    """The result is a float: the mean over the epoch's examples of what step returned for their batches."""
    result, step = _run_epoch(function, device)
    if not isinstance(result, float):
        raise PropertyFailed(f"train_epoch returned a {type(result).__name__}: return a Python float")
    expected = (_EPOCH_SIZE - 1) / 2  # the mean index, when each batch's value counts once per example
    if abs(result - expected) > 1e-6:
        per_batch = sum(sum(ids) / len(ids) for ids, _ in step.batches) / len(step.batches)
        every_example = sum(len(ids) for ids, _ in step.batches) == _EPOCH_SIZE
        hint = (" (the mean of the batch means: the last batch has only "
                f"{_EPOCH_SIZE % _EPOCH_BATCH} examples, so weight each batch's loss by its size)"
                if every_example and abs(result - per_batch) < 1e-6 else "")
        raise PropertyFailed(f"train_epoch returned {result:.4f}, not the mean loss over the epoch's examples "
                             f"({expected:.4f}){hint}")


# ---------------------------------------------------------------- cross-entropy from logits

check_cross_entropy = Check("cross_entropy", "Check a learner's cross_entropy_from_logits(logits, labels) -> 0-d "
                            "tensor against F.cross_entropy (its value, its gradient, and its stability for large "
                            "logits) and print one PASS/FAIL line per property.")


def _call_loss(function: LossFunction, logits: Tensor, labels: Tensor) -> Tensor:
    """Run the learner's loss and insist on a scalar tensor on the logits' device."""
    result = function(logits, labels)
    if not isinstance(result, Tensor):
        raise PropertyFailed(f"it returned a {type(result).__name__}; return a 0-d tensor (so backward() works)")
    if result.dim() != 0:
        raise PropertyFailed(f"it returned shape {tuple(result.shape)}; return the mean over the batch, a 0-d tensor")
    if result.device.type != logits.device.type:
        raise PropertyFailed(f"it returned a tensor on {result.device} for logits on {logits.device}: compute with "
                             "torch operations on the logits, without creating tensors elsewhere")
    return result


@check_cross_entropy.property("value", "equals F.cross_entropy (the batch mean) on random logits")
def _expect_loss_matches(function: LossFunction, device: torch.device) -> None:
    """Equals F.cross_entropy on random logits, for several batch and class counts."""
    for batch, classes in ((32, 10), (7, 3)):
        logits = 3 * random_tensor(device, batch, classes, seed=batch)
        labels = torch.arange(batch, device=device) % classes
        got = _call_loss(function, logits, labels).item()
        expected = F.cross_entropy(logits, labels).item()
        if abs(got - expected) <= 1e-5 * max(1.0, expected):
            continue
        if abs(got - batch * expected) <= 1e-4 * batch * expected:
            hint = "it is the sum over the batch: take the mean"
        elif abs(got - F.cross_entropy(logits.softmax(dim=1), labels).item()) <= 1e-5:
            hint = "it applies softmax before the cross-entropy: log-sum-exp already normalises, use the raw logits"
        elif abs(got + expected) <= 1e-5 * max(1.0, expected):
            hint = "its sign is flipped: the loss is minus the log-probability of the true class"
        else:
            hint = "compute mean(logsumexp(z) - z[true class]) over the rows z of the logits"
        raise PropertyFailed(f"for {batch}x{classes} logits it gives {got:.5f}, F.cross_entropy gives {expected:.5f}: "
                             f"{hint}")


@check_cross_entropy.property("gradient", "its gradient is (softmax - onehot) / N")
def _expect_loss_gradient(function: LossFunction, device: torch.device) -> None:
    """Its gradient with respect to the logits is (softmax(z) - onehot(y)) / N, as autograd gives for the real one."""
    logits = random_tensor(device, 16, 5, seed=3).requires_grad_(True)
    labels = torch.arange(16, device=device) % 5
    loss = _call_loss(function, logits, labels)
    if not loss.requires_grad:
        raise PropertyFailed("the loss does not depend on the logits in autograd's eyes: compute it with "
                             "differentiable torch operations, without .item(), .detach(), .data or NumPy")
    loss.backward()
    expected = (logits.detach().softmax(dim=1) - F.one_hot(labels, 5)) / 16
    if logits.grad is not None and torch.allclose(logits.grad, expected, atol=1e-6):
        return
    if logits.grad is not None and torch.allclose(logits.grad, 16 * expected, atol=1e-5):
        raise PropertyFailed("its gradient is N times too large: it sums over the batch; take the mean")
    raise PropertyFailed("its gradient with respect to the logits is not (softmax - onehot) / N, the gradient of "
                         "the mean cross-entropy: use the raw logits, mean(logsumexp(z) - z[true class])")


@check_cross_entropy.property("stable", "finite and exact for logits in the thousands")
def _expect_stable(function: LossFunction, device: torch.device) -> None:
    """Stays finite and exact when logits are in the thousands, where softmax underflows to exactly 0."""
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0], [-500.0, 500.0, 0.0]], device=device)
    labels = torch.tensor([2, 0, 1], device=device)
    got = _call_loss(function, logits, labels).item()
    expected = F.cross_entropy(logits, labels).item()
    if abs(got - expected) <= 1e-4 * expected:
        return
    if not math.isfinite(got):
        raise PropertyFailed(f"for logits in the thousands it gives {got}, expected {expected:.1f}: softmax rounds "
                             "the true class's probability to 0 and log(0) = -inf. Use the log-sum-exp form, "
                             "torch.logsumexp(z, dim=1) - z[true class], which never exponentiates a large number")
    raise PropertyFailed(f"for logits in the thousands it gives {got:.4g}, expected {expected:.1f}: compute "
                         "mean(logsumexp(z) - z[true class]) on the raw logits, without clamping or adding epsilons")
