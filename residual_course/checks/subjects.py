"""Build and run the learner's code so that its usual crashes become sentences that say what to fix."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
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


@functools.cache
def _salt() -> str:
    """This run's salt: the grader's secret (RESIDUAL_COURSE_CHECK_SALT) or, anywhere else, a fresh one per process,
    drawn on first use (never in a process that forks others, so no two runs share it)."""
    return os.environ.get("RESIDUAL_COURSE_CHECK_SALT") or secrets.token_hex(16)


def salted_seed(*key: object) -> int:
    """A seed for one probe: the same within a run for the same key, new in every run, unknowable to the code
    under test (so a module cannot tell a probe from real use by its values or sizes)."""
    digest = hashlib.sha256(repr((_salt(), key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def random_tensor(device: torch.device, *shape: int, seed: int = 0) -> Tensor:
    """A standard-normal tensor made directly on the device (nothing is created on the CPU), from this run's salt
    and `seed`: two calls with one seed within a run agree."""
    generator = torch.Generator(device=device).manual_seed(salted_seed("tensor", seed))
    return torch.randn(*shape, generator=generator, device=device)


def randomize_weights(module: nn.Module, seed: int) -> None:
    """Give every parameter and floating buffer a random, non-degenerate value from this run's salt (He-scaled
    kernels and matrices, vectors around 0, positive running statistics): behaviour seen on special weights only
    (all zero, a BatchNorm at its initial statistics) proves little."""
    tensors = [(True, t) for t in module.parameters()] + [(False, t) for t in module.buffers()]
    with torch.no_grad():
        for index, (learned, tensor) in enumerate(tensors):
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            noise = random_tensor(tensor.device, *tensor.shape, seed=seed * 1000 + index).to(tensor.dtype)
            if not learned:  # running statistics: a variance must stay positive
                tensor.copy_(0.5 + noise.abs())
            elif tensor.dim() >= 2:
                tensor.copy_(noise * (2 / tensor[0].numel()) ** 0.5)
            else:
                tensor.copy_(0.5 * noise)


def probe_size(low: int, high: int, key: object) -> int:
    """A size between low and high (both included) that this run's probes share for `key`: a batch, a side."""
    return low + salted_seed("size", key) % (high - low + 1)


READY_MADE = ("torchvision", "residual_course")  # packages whose modules would answer an exercise for the learner


def _code_files(cls: type) -> list[str]:
    """The source files of the functions a class defines itself (methods, properties, static and class methods)."""
    files = []
    for value in vars(cls).values():
        for function in (value, getattr(value, "__func__", None), getattr(value, "fget", None)):
            code = getattr(function, "__code__", None)
            if code is not None:
                files.append(code.co_filename)
    return files


@functools.lru_cache(maxsize=4)
def _import_roots(path: tuple[str, ...]) -> tuple[Path, ...]:
    """sys.path's folders, resolved, longest first (a file belongs to the most specific one)."""
    roots = {Path(entry).resolve() for entry in path if entry and Path(entry).is_dir()}
    return tuple(sorted(roots, key=lambda root: -len(root.parts)))


@functools.lru_cache(maxsize=4096)
def _module_of_file(filename: str, path: tuple[str, ...]) -> str | None:
    """The dotted module a source file is importable as from `path` (None for a notebook cell's code)."""
    file = Path(filename)
    if not file.is_absolute() or file.suffix != ".py":
        return None
    file = file.resolve()
    root = next((root for root in _import_roots(path) if file.is_relative_to(root)), None)
    if root is None:
        return None
    parts = file.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def class_origin(cls: type) -> tuple[str, str]:
    """Where a class comes from, as "module.Class": from the files its functions' code was compiled from, which
    rewriting `__module__` does not change; and, when `__module__` names another package, that claim ("" if none)."""
    claimed = f"{cls.__module__}.{cls.__qualname__}"
    modules = [m for m in (_module_of_file(file, tuple(sys.path)) for file in _code_files(cls)) if m]
    if not modules:
        return claimed, ""
    actual = f"{modules[0]}.{cls.__qualname__}"
    relabelled = claimed if cls.__module__.split(".")[0] != modules[0].split(".")[0] else ""
    return actual, relabelled


def ready_made_classes(module: nn.Module, lent: tuple[type, ...] = ()) -> list[str]:
    """The classes inside the learner's module that come ready-made from torchvision or the course package.

    The rule every exercise states: build your answer from torch.nn's layers and your own classes (a subclass of a
    ready-made block is that block). Where a class comes from is read from its code (class_origin), so a class
    relabelled by rewriting its `__module__` is still found. Modules the check itself lends (instances of `lent`) do
    not count. A graded copy of a learner's module (the autograder's) carries the class names the learner's process
    reported, as `student_classes`.
    """
    names: dict[str, None] = {}  # outermost first
    for sub in nn.Module.modules(module):
        if isinstance(sub, lent):
            continue
        names.update(dict.fromkeys(class_origin(cls)[0] for cls in type(sub).__mro__))
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
