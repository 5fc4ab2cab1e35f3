"""Build and run the learner's code so that its usual crashes become sentences that say what to fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from residual_course.checks.report import PropertyFailed


class Clash(NamedTuple):
    """A RuntimeError that learner code often raises: text that identifies it, where it happens, and the fix."""

    markers: tuple[str, ...]  # any one of these in the error message identifies the clash
    where: str  # completes "{call} fails ...", e.g. "at the addition"
    fix: str


Forward = Callable[[nn.Module, Tensor, str], Tensor]  # `run`, or a lesson's wrapper of it that adds its own clashes


def name_of(subject: object, default: str) -> str:
    """The learner's class or function name, for messages."""
    return getattr(subject, "__name__", default)


def random_tensor(device: torch.device, *shape: int, seed: int = 0) -> Tensor:
    """A reproducible standard-normal tensor made directly on the device (nothing is created on the CPU)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(*shape, generator=generator, device=device)


READY_MADE = ("torchvision", "residual_course")  # packages whose modules would answer an exercise for the learner


def ready_made_classes(module: nn.Module, lent: tuple[type, ...] = ()) -> list[str]:
    """The classes inside the learner's module that come ready-made from torchvision or the course package.

    The rule every exercise states: build your answer from torch.nn's layers and your own classes (a subclass of a
    ready-made block is that block). Modules the
    check itself lends (instances of `lent`) do not count. A graded copy of a learner's module (the autograder's)
    carries the class names the learner's process reported, as `student_classes`.
    """
    names: dict[str, None] = {}  # outermost first
    for sub in nn.Module.modules(module):
        if isinstance(sub, lent):
            continue
        names.update(dict.fromkeys(f"{cls.__module__}.{cls.__qualname__}" for cls in type(sub).__mro__))
        names.update(dict.fromkeys(str(name) for name in getattr(sub, "student_classes", ())))
    return [name for name in names if name.split(".")[0] in READY_MADE]


def build(factory: Callable[..., object], *args: object, device: torch.device, call: str,
          lent: tuple[type, ...] = (), **kwargs: object) -> nn.Module:
    """Call the learner's factory (`call` says how, for messages), insist on an nn.Module of the learner's own
    making (no ready-made torchvision or course module inside; `lent` ones are the check's), move it to the device."""
    built = factory(*args, **kwargs)
    if not isinstance(built, nn.Module):
        raise PropertyFailed(f"{call} returned a {type(built).__name__}, not an nn.Module")
    borrowed = ready_made_classes(built, lent)
    if borrowed:
        raise PropertyFailed(f"{call} is built from {', '.join(borrowed[:3])}, ready-made: an exercise's points are "
                             "for code you write, so build it from torch.nn layers (nn.Conv2d, nn.Linear, "
                             "nn.BatchNorm2d, nn.ReLU, nn.Sequential...) and your own classes")
    return built.to(device)


def run(module: nn.Module, inputs: Tensor, call: str, clashes: Sequence[Clash] = (),
        returns: str = "one tensor") -> Tensor:
    """Call the module on the inputs, turning known clashes and mixed devices into sentences; insist on a tensor."""
    try:
        output = module(inputs)
    except RuntimeError as error:
        text = str(error)
        for clash in clashes:
            if any(marker in text for marker in clash.markers):
                raise PropertyFailed(f"{call} fails {clash.where} on input of shape {tuple(inputs.shape)} ({text}): "
                                     f"{clash.fix}") from None
        if "device" in text:
            raise PropertyFailed(f"{call} mixes devices ({text}): create every new tensor on x.device, and register "
                                 "every layer as an attribute (or in nn.Sequential / nn.ModuleList, fixed tensors as "
                                 "buffers) so that .to(device) moves it") from None
        raise
    if not isinstance(output, Tensor):
        raise PropertyFailed(f"{call} returned a {type(output).__name__}, not a tensor: return {returns}")
    return output


def expect_on_device(module: nn.Module, inputs: Tensor, device: torch.device, call: str,
                     forward: Forward = run) -> Tensor:
    """Every parameter of the module and its output on `inputs` live on the device; returns that output."""
    misplaced = [p.device for p in module.parameters() if p.device.type != device.type]
    if misplaced:
        raise PropertyFailed(f"some parameters of {call} stayed on {misplaced[0]} after .to({device.type}): register "
                             "every layer as an attribute (or in nn.Sequential / nn.ModuleList)")
    output = forward(module, inputs, call)
    if output.device.type != device.type:
        raise PropertyFailed(f"{call} returned its output on {output.device}, expected {device.type}: create every "
                             "new tensor on x.device")
    return output


def expect_device_and_gradient(module: nn.Module, inputs: Tensor, device: torch.device, call: str,
                               forward: Forward = run) -> None:
    """Parameters and output live on the device, and a finite, non-zero gradient of the output reaches the input."""
    inputs = inputs.clone().requires_grad_(True)
    expect_on_device(module, inputs, device, call, forward).square().sum().backward()
    if inputs.grad is None or not torch.isfinite(inputs.grad).all() or inputs.grad.abs().sum() == 0:
        raise PropertyFailed(f"no finite, non-zero gradient reaches the input of {call}: avoid .detach(), .data and "
                             "torch.no_grad() inside forward")


def expect_batchnorm_modes(module: nn.Module, inputs: Tensor, call: str, batchnorm: str, after: str,
                           forward: Forward = run) -> None:
    """Batch statistics in train(), running ones in eval(); a failure says to put `batchnorm` after `after`."""
    others = torch.cat([inputs[:1], 3 * inputs[1:] + 1])
    with torch.no_grad():
        module.train()
        trained = forward(module, inputs, call)[0], forward(module, others, call)[0]
        module.eval()
        evaluated = forward(module, inputs, call)[0], forward(module, others, call)[0]
    if torch.allclose(*trained, atol=1e-5):
        raise PropertyFailed(f"in train() mode one example's output of {call} ignores the rest of the batch: put an "
                             f"{batchnorm} after {after}")
    if not torch.allclose(*evaluated, atol=1e-5):
        raise PropertyFailed(f"in eval() mode one example's output of {call} still depends on the rest of the batch: "
                             f"use {batchnorm}, which switches to its running statistics in eval mode")


def expect_every_parameter_matters(module: nn.Module, inputs: Tensor, call: str, forward: Forward = run) -> None:
    """Each parameter gets a gradient and, nudged, changes the output: none was created and then left idle."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if not named:
        return
    module.train()
    weights = random_tensor(inputs.device, *forward(module, inputs, call).shape, seed=7)
    output = forward(module, inputs, call)
    grads = torch.autograd.grad((output * weights).sum(), [p for _, p in named], allow_unused=True)
    idle = [name for (name, _), grad in zip(named, grads, strict=True)
            if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0]
    with torch.no_grad():
        module.eval()
        before = forward(module, inputs, call)
        for name, parameter in named:
            if name in idle:
                continue
            saved = parameter.detach().clone()
            parameter.add_(random_tensor(inputs.device, *parameter.shape, seed=11) * (saved.abs().mean() + 0.1))
            changed = not torch.allclose(forward(module, inputs, call), before, atol=1e-6)
            parameter.copy_(saved)
            if not changed:
                idle.append(name)
    if idle:
        owners = list(dict.fromkeys(name.rpartition(".")[0] or name for name in idle))
        raise PropertyFailed(f"in {call} the parameters of {', '.join(owners)} take no part in the output (no "
                             f"gradient reaches them, or changing them changes nothing): call every layer you create "
                             "in forward, each exactly where the diagram puts it")
