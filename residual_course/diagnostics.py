"""Training diagnostics beyond the first/last gradient ratio: update-to-data ratios, histograms, dead ReLUs, and
how far apart the examples of a batch stay layer by layer.

After Karpathy's makemore part 3 and the UvA deep learning tutorial 3 (initialisation): is every layer learning at
a sensible speed (updates about 1e-3 of the weights), are activations saturated, are ReLUs dead, does the forward
pass still tell the examples apart, how does a residual stream's variance grow? Each function runs on the model's
device and leaves the model as it found it (train/eval mode, weights, buffers such as BatchNorm statistics, `.grad`,
`requires_grad`, no hooks left behind); `recording_update_ratios` only watches the training you run. Activations
are found by module type (nn.ReLU, nn.Sigmoid, nn.Tanh); functional calls such as `F.relu` or `torch.tanh` have no
module and are not seen.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.probes import forward_hooks

TANH_SATURATED, SIGMOID_SATURATED = 0.97, 0.03  # |tanh| above, sigmoid this close to 0 or 1: its slope is ~0
SATURATION_TESTS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.Tanh: lambda output: output.abs() > TANH_SATURATED,
    nn.Sigmoid: lambda output: (output < SIGMOID_SATURATED) | (output > 1 - SIGMOID_SATURATED),
    nn.ReLU: lambda output: output == 0,
}
ACTIVATION_TYPES = tuple(SATURATION_TESTS)
HISTOGRAM_BINS = 50
Summary = TypeVar("Summary")


@contextlib.contextmanager
def recording_update_ratios(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[dict[str, list[float]]]:
    """While open, every `optimizer.step()` appends log10(‖ΔW‖ / ‖W‖) for each weight matrix or conv kernel.

    Yields {parameter name: [one ratio per step]} for the parameters of `model` with ndim >= 2 that `optimizer`
    updates. ΔW is the step the optimiser really took, so momentum and Adam are measured as they act; for plain
    SGD it is lr * grad. Around -3 (updates 1e-3 of the weights) is the usual rule of thumb: far below, the layer
    barely learns; far above, it thrashes. The optimiser's step hooks are removed on exit.
    """
    updated = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    weights = {name: parameter for name, parameter in model.named_parameters()
               if parameter.ndim >= 2 and id(parameter) in updated}
    if not weights:
        raise ValueError("The optimizer updates no weight matrix or conv kernel (parameter of ndim >= 2) of the model.")
    ratios: dict[str, list[float]] = {name: [] for name in weights}
    before: dict[str, Tensor] = {}

    def remember(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        """Copy the weights just before the step."""
        before.update({name: weight.detach().clone() for name, weight in weights.items()})

    def record(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        """Compare with the copies, for every layer at once (one device-to-host transfer per step)."""
        relative_steps = torch.stack([torch.linalg.vector_norm(weight.detach() - before[name])
                                      / torch.linalg.vector_norm(before[name]) for name, weight in weights.items()])
        for name, ratio in zip(weights, relative_steps.log10().tolist(), strict=True):
            ratios[name].append(ratio)

    handles = [optimizer.register_step_pre_hook(remember), optimizer.register_step_post_hook(record)]
    try:
        yield ratios
    finally:
        for handle in handles:
            handle.remove()


def update_ratios(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    steps: int,
    lr: float,
    optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.SGD,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> dict[str, list[float]]:
    """Train a copy of `model` for `steps` steps and return its update-to-data ratios by weight name.

    `batches` yields (inputs, targets), e.g. a DataLoader or `itertools.repeat((images, labels))`; the first
    `steps` are used, moved to the model's device. `optimizer` is called as `optimizer(parameters, lr=lr)` with the
    parameters that require grad, e.g. `torch.optim.Adam` or `functools.partial(torch.optim.SGD, momentum=0.9)`.
    The copy trains in train mode; the model itself is not touched, so several learning rates can be compared
    from the same initial weights.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    trainee = copy.deepcopy(model).train()
    device = _device(trainee)
    trainer = optimizer([parameter for parameter in trainee.parameters() if parameter.requires_grad], lr=lr)
    taken = 0
    with recording_update_ratios(trainee, trainer) as ratios:
        for inputs, targets in itertools.islice(batches, steps):
            trainer.zero_grad(set_to_none=True)
            loss_fn(trainee(inputs.to(device)), targets.to(device)).backward()
            trainer.step()
            taken += 1
    if taken < steps:
        raise ValueError(f"batches ran out after {taken} of {steps} steps: pass more, or itertools.cycle them.")
    return ratios


@dataclass(frozen=True)
class Histogram:
    """The values one layer produced in one pass, binned: Karpathy's per-layer histogram, with its summary."""

    name: str
    mean: float
    std: float
    counts: list[int]
    edges: list[float]  # len(counts) + 1 bin edges

    def describe(self) -> str:
        """Name, mean and std, for a legend or a printout."""
        return f"{self.name}: mean {self.mean:+.2e}, std {self.std:.2e}"


@dataclass(frozen=True)
class ActivationHistogram(Histogram):
    """An activation layer's outputs, with the fraction in the flat part where its gradient is ~0."""

    saturated_fraction: float

    def describe(self) -> str:
        """Name, mean, std and saturated fraction, for a legend or a printout."""
        return f"{self.name}: mean {self.mean:+.2f}, std {self.std:.2f}, saturated {self.saturated_fraction:.1%}"


def activation_histograms(model: nn.Module, inputs: Tensor, types: tuple[type[nn.Module], ...] = ACTIVATION_TYPES,
                          bins: int = HISTOGRAM_BINS) -> list[ActivationHistogram]:
    """One histogram per call of an activation module of `types`, in forward order, from one forward pass.

    Saturated means |tanh| > TANH_SATURATED, a sigmoid within SIGMOID_SATURATED of 0 or 1, a ReLU output of 0.
    The pass runs in the model's current mode (call `model.train()` first for training statistics). A module
    called twice (torchvision's blocks reuse `self.relu`) gives two histograms, "name" and "name (call 2)".
    """
    _check_types(types)

    def summarise(name: str, module: nn.Module, output: Tensor) -> ActivationHistogram:
        """Bin the output and count its saturated entries."""
        saturated = _saturation_test(module)(output).float().mean().item()
        return ActivationHistogram(**vars(_histogram(name, output, bins)), saturated_fraction=saturated)

    with _each_call(model, types, summarise) as histograms, torch.no_grad():
        model(inputs.to(_device(model)))
    return histograms


def activation_gradient_histograms(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    types: tuple[type[nn.Module], ...] = ACTIVATION_TYPES,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    bins: int = HISTOGRAM_BINS,
) -> list[Histogram]:
    """One histogram of ∂loss/∂(activation output) per call of an activation module, from one forward/backward.

    Named and ordered as `activation_histograms`. The gradients come from `torch.autograd.grad`, so no
    parameter's `.grad` changes. Outputs that depend on nothing requiring grad are left out (all of them: raises).
    """
    _check_types(types)
    device = _device(model)
    with _each_call(model, types, lambda name, module, output: (name, output)) as outputs:
        loss = loss_fn(model(inputs.to(device)), targets.to(device))
        differentiable = [(name, output) for name, output in outputs if output.requires_grad]
        if not differentiable:
            raise ValueError("No activation output depends on a parameter that requires grad: nothing to measure.")
        gradients = torch.autograd.grad(loss, [output for _, output in differentiable])
    return [_histogram(name, gradient, bins) for (name, _), gradient in zip(differentiable, gradients, strict=True)]


def dead_unit_fractions(model: nn.Module, inputs: Tensor) -> dict[str, float]:
    """Per nn.ReLU call, the fraction of its units that output 0 for every example of the batch: dead units.

    A unit is one entry of the per-example output: a feature after a Linear layer, a channel at one position after
    a conv. Only nn.ReLU modules are seen, not `F.relu` or `torch.relu`. Runs in the model's current mode; named
    as `activation_histograms`.
    """

    def dead_fraction(name: str, module: nn.Module, output: Tensor) -> tuple[str, float]:
        """Units at 0 for every example (dim 0 is the batch)."""
        return name, (output == 0).all(dim=0).float().mean().item()

    with _each_call(model, (nn.ReLU,), dead_fraction) as fractions, torch.no_grad():
        model(inputs.to(_device(model)))
    return dict(fractions)


def spread_profile(model: nn.Module, inputs: Tensor,
                   types: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)) -> list[float]:
    """How different the examples of a batch still are at the input of each layer of `types`, first layer first.

    For each layer: the standard deviation across the batch of every unit of its input, averaged over the units;
    0 means every example reaches the layer as the same vector. It is the forward twin of
    `gradients.signal_profile`, measured at the same places, so the two can be drawn side by side. One pass
    without gradients in the model's current mode; buffers (BatchNorm statistics) are put back.
    """
    if len(inputs) < 2:
        raise ValueError(f"A spread across the batch needs at least 2 examples, got {len(inputs)}.")
    spreads: list[Tensor] = []

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
            spreads.append(args[0].detach().flatten(1).double().std(dim=0).mean())

        return keep

    with _buffers_restored(model), forward_hooks(model, types, make_hook), torch.no_grad():
        model(inputs.to(_device(model)))
    if not spreads:
        raise ValueError(f"The model ran no layer of the types {[kind.__name__ for kind in types]}.")
    return torch.stack(spreads).tolist()


def stream_variances(blocks: Sequence[nn.Module], inputs: Tensor) -> list[float]:
    """The residual stream's variance where it enters each block, and after the last one: how much each block adds.

    The variance of every unit (or channel at every position) across the batch, averaged over the units. One pass
    through the blocks in order, in their current mode, without gradients; buffers (BatchNorm statistics) are put
    back.
    """
    if len(inputs) < 2:
        raise ValueError(f"A variance across the batch needs at least 2 examples, got {len(inputs)}.")
    variances = []
    stream = inputs
    with contextlib.ExitStack() as stack, torch.no_grad():
        for block in blocks:
            stack.enter_context(_buffers_restored(block))
        for block in [None, *blocks]:
            stream = stream if block is None else block(stream)
            variances.append(stream.double().var(dim=0).mean().item())
    return variances


@contextlib.contextmanager
def _each_call(model: nn.Module, types: tuple[type[nn.Module], ...],
               summarise: Callable[[str, nn.Module, Tensor], Summary]) -> Iterator[list[Summary]]:
    """Collect summarise(name, module, output) for each call of a module of `types` inside the block, in order.

    Summarising as the output passes means later in-place ops cannot change what is reported. The second call of
    a module is named "name (call 2)". Hooks are removed and buffers put back on exit.
    """
    summaries: list[Summary] = []
    calls: Counter[str] = Counter()

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        """Bind the module's name, so each hook reports under its own layer."""

        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            """Summarise this call's output under the layer's name."""
            calls[name] += 1
            summaries.append(summarise(name if calls[name] == 1 else f"{name} (call {calls[name]})", module, output))

        return hook

    with _buffers_restored(model), forward_hooks(model, types, make_hook):
        yield summaries


def _histogram(name: str, values: Tensor, bins: int) -> Histogram:
    """The tensor's values binned between their min and max (on its device), with their mean and std."""
    values = values.detach().float().flatten()
    low, high = values.min().item(), values.max().item()
    if low == high:  # one value everywhere (a dead layer): a bin of width 1 around it
        low, high = low - 0.5, high + 0.5
    counts = torch.histc(values, bins=bins, min=low, max=high).long().tolist()
    edges = torch.linspace(low, high, bins + 1).tolist()
    return Histogram(name, values.mean().item(), values.std().item(), counts, edges)


def _saturation_test(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The saturation test of the module's activation type."""
    return next(test for kind, test in SATURATION_TESTS.items() if isinstance(module, kind))


def _check_types(types: tuple[type[nn.Module], ...]) -> None:
    """Only activations whose saturation is defined here."""
    unknown = [kind.__name__ for kind in types if not issubclass(kind, ACTIVATION_TYPES)]
    if unknown:
        raise ValueError(f"types must be among nn.Tanh, nn.Sigmoid and nn.ReLU, got {', '.join(unknown)}.")


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; the CPU for a model with neither."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


@contextlib.contextmanager
def _buffers_restored(model: nn.Module) -> Iterator[None]:
    """Put back every buffer after a pass: in train mode BatchNorm updates its running statistics as it runs."""
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
