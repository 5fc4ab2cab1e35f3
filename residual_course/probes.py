"""Look inside a learner's module by what it does when it runs, never by its attribute names."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Call:
    """One module call seen during a forward pass: what ran, on what shapes, and how negative its input was."""

    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_min: float


def learn_layers(model: nn.Module, inputs: Tensor) -> None:
    """Show the model its inputs first: the grader's copy of a learner's module knows its layers only once it has
    traced a forward pass (it is rebuilt from the exported graph), so hooks must wait until then."""
    prepare = getattr(model, "prepare_for", None)
    if callable(prepare):
        prepare(inputs)


@contextlib.contextmanager
def forward_hooks(model: nn.Module, types: tuple[type[nn.Module], ...],
                  make_hook: Callable[[str, nn.Module], Callable[..., None]], inputs: Tensor | None = None
                  ) -> Iterator[None]:
    """Attach make_hook(name, module) to every submodule of the given types (once `inputs` showed the model its
    layers), and always detach them after."""
    if inputs is not None:
        learn_layers(model, inputs)
    handles = [m.register_forward_hook(make_hook(name, m)) for name, m in model.named_modules() if isinstance(m, types)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def trace_forward(model: nn.Module, inputs: Tensor, types: tuple[type[nn.Module], ...]) -> list[Call]:
    """Record, in execution order, every call of a submodule of the given types during one forward pass."""
    calls: list[Call] = []

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple, output: Tensor) -> None:
            first = args[0]
            calls.append(Call(module, tuple(first.shape), tuple(output.shape), float(first.min())))

        return record

    with forward_hooks(model, types, make_hook, inputs), torch.no_grad():
        model(inputs)
    return calls
