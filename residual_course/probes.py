"""Look inside a learner's module by what it does when it runs, never by its attribute names.

Two views: module hooks (`trace_forward`, `forward_hooks`), which see the layers a learner made as modules; and the
operations the dispatcher runs (`trace_layers`), which sees every convolution and BatchNorm whatever way it was
written (nn.Conv2d, F.conv2d, a graph rebuilt by the autograder), each with a copy of what it read and wrote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode


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


@dataclass(frozen=True)
class LayerOp:
    """A convolution or BatchNorm the dispatcher ran: copies of what it read and wrote, the weight it used (the
    learner's own tensor), and how it was configured."""

    kind: str  # "conv" or "norm"
    input: Tensor
    output: Tensor
    weight: Tensor | None
    kernel: tuple[int, ...] = ()  # conv
    stride: tuple[int, ...] = ()  # conv
    groups: int = 1  # conv
    training: bool = False  # norm: batch statistics (True) or running ones

    @property
    def out_channels(self) -> int:
        return int(self.output.shape[1])


# every spelling of a BatchNorm that reaches the dispatcher, and where its `training` flag is (None: implied)
_NORMS = {"native_batch_norm": 5, "cudnn_batch_norm": 5, "miopen_batch_norm": 5, "_native_batch_norm_legit": 5,
          "_native_batch_norm_legit_no_training": False, "_batch_norm_with_update": True,
          "_batch_norm_no_update": False}


class _LayerRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[LayerOp] = []

    def __torch_dispatch__(self, func: object, types: tuple, args: tuple = (), kwargs: dict | None = None) -> object:
        output = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name == "convolution":
            x, weight, _, stride, _, _, _, _, groups = args
            self.ops.append(LayerOp("conv", x.detach().clone(), output.detach().clone(), weight,
                                    tuple(weight.shape[2:]), tuple(stride), int(groups)))
        elif name in _NORMS:
            flag = _NORMS[name]
            training = bool(args[flag]) if isinstance(flag, int) and not isinstance(flag, bool) else flag
            first = output[0] if isinstance(output, (tuple, list)) else output
            self.ops.append(LayerOp("norm", args[0].detach().clone(), first.detach().clone(), args[1],
                                    training=bool(training)))
        return output


def trace_layers(model: nn.Module, inputs: Tensor) -> tuple[list[LayerOp], Tensor]:
    """Every convolution and BatchNorm one forward pass runs, in order, and the pass's output (no gradients)."""
    learn_layers(model, inputs)
    with torch.no_grad(), _LayerRecorder() as recorder:
        output = model(inputs)
    return recorder.ops, output
