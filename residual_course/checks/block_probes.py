"""Probes of a residual block's behaviour that several lessons' checks share: lesson 05's blocks, lesson 08's ResNeXt
and DenseNet parts, lesson 03's residual MLP block (a zero branch, the wiring of its layers, parameter counts,
strides, device and gradient).

Every probe draws its inputs from this run's salt, at a batch size and side that change from run to run
(`probe_batch`, `probe_side`), and the wiring is looked at with random weights, in train and eval mode: a block
cannot pass by recognising a probe."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.report import PropertyFailed
from residual_course.checks.subjects import (
    Clash,
    build,
    expect_device_and_gradient,
    name_of,
    probe_size,
    random_tensor,
    randomize_weights,
    run,
)
from residual_course.formulas import count_parameters
from residual_course.probes import LayerOp, trace_layers

BlockFactory = Callable[..., nn.Module]

SHORTCUT_CLASH = Clash(("must match the size", "size of tensor"), "at the addition",
                       "when the stride or the channel count changes, the shortcut must change shape too; use a 1x1 "
                       "conv (that stride, bias=False) followed by BatchNorm")


def probe_batch(seed: int = 0) -> int:
    """This run's batch size for the block probe `seed` (3 to 8)."""
    return probe_size(3, 8, ("batch", seed))


def probe_side(seed: int = 0) -> int:
    """This run's height and width for the block probe `seed` (5 to 12; odd sides test a stride's rounding)."""
    return probe_size(5, 12, ("side", seed))


def probe_input(device: torch.device, channels: int, seed: int = 0) -> Tensor:
    """A salted batch of feature maps for a block with `channels` input channels: each probe (`seed`) has its own
    values and sizes, new in every run, so no size or value tells a probe from real use."""
    side = probe_side(seed)
    return random_tensor(device, probe_batch(seed), channels, side, side, seed=seed)


def strided_shape(inputs: Tensor, channels: int, stride: int) -> tuple[int, ...]:
    """The shape a block with this stride gives a batch: padded 3x3 and 1x1 convs round up (ceil(H / stride))."""
    batch, _, height, width = inputs.shape
    return batch, channels, -(-height // stride), -(-width // stride)


def block_call(factory: BlockFactory, args: tuple[int, ...]) -> str:
    """The constructor call as the learner would type it, for messages: BasicBlock(16, 32, 2)."""
    return f"{name_of(factory, 'block')}{args}"


def run_block(block: nn.Module, inputs: Tensor, call: str) -> Tensor:
    """Forward pass that turns a shape clash at the addition into a sentence about the shortcut."""
    return run(block, inputs, call, [SHORTCUT_CLASH])


def expect_params(block: nn.Module, expected: int | set[int], call: str, extra: dict[int, str]) -> None:
    """Compare the parameter count with the formula, naming the likely cause of a difference."""
    got = count_parameters(block)
    allowed = expected if isinstance(expected, set) else {expected}
    if got in allowed:
        return
    reference = min(allowed)
    fallback = "compare your layers with the block's diagram: kernel sizes, channels, BatchNorms"
    hint = extra.get(got - reference, fallback)
    raise PropertyFailed(f"{call} has {got:,} parameters, expected {reference:,}: {hint}")


def zero_parameters(block: nn.Module) -> None:
    """Set every weight and bias to zero, which makes a well-built residual branch output exactly zero."""
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.zero_()


def zero_branch_output(factory: BlockFactory, args: tuple[int, ...], device: torch.device,
                       training: bool = False) -> tuple[Tensor, Tensor]:
    """Input and output of an identity-shortcut block whose parameters are all zero, in either mode."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call).train(training)
    zero_parameters(block)
    inputs = probe_input(device, args[0], seed=1)
    with torch.no_grad():
        return inputs, run_block(block, inputs, call)


def expect_zero_branch_gives(factory: BlockFactory, args: tuple[int, ...], device: torch.device,
                             final_relu: bool) -> None:
    """With a zero branch a block returns relu(x) (post-activation) or x itself (pre-activation), in both modes."""
    for training in (False, True):
        _expect_zero_branch_gives(*zero_branch_output(factory, args, device, training), final_relu)


def _expect_zero_branch_gives(inputs: Tensor, output: Tensor, final_relu: bool) -> None:
    expected, mistaken = (F.relu(inputs), inputs) if final_relu else (inputs, F.relu(inputs))
    if torch.allclose(output, expected, atol=1e-6):
        return
    if torch.allclose(output, mistaken, atol=1e-6):
        raise PropertyFailed(
            "with the residual branch at zero the block returned x unchanged, so no ReLU runs after the "
            "addition: apply the last ReLU to (branch + shortcut), not to the branch before adding" if final_relu
            else "with the residual branch at zero the block returned relu(x): a pre-activation block has no ReLU "
            "after the addition; return branch + shortcut as is")
    if torch.count_nonzero(output) == 0:
        raise PropertyFailed("with the residual branch at zero the block returned all zeros: the shortcut is "
                             "missing; add the input (or its projection) to the branch output")
    raise PropertyFailed(f"with the residual branch at zero the block should return {'relu(x)' if final_relu else 'x'}"
                         "; it returned something else: the branch must end in its last conv (and BN), and the "
                         "shortcut must be x itself when the shape does not change")


def expect_block_device_and_gradient(factory: BlockFactory, args: tuple[int, ...], device: torch.device) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    expect_device_and_gradient(block, probe_input(device, args[0], seed=2), device, call, run_block)


def expect_stride_in_first_3x3(block: nn.Module, inputs: Tensor, call: str) -> None:
    """The first 3x3 conv that runs does the downsampling (as torchvision's ResNet v1.5 does), in both modes."""
    for training in (False, True):
        convs = [op for op in trace_layers(block.train(training), inputs)[0] if op.kernel == (3, 3)]
        if not convs:
            raise PropertyFailed(f"{call} runs no 3x3 convolution")
        first = convs[0]
        if first.output.shape[-1] == first.input.shape[-1]:
            raise PropertyFailed(f"in {call} the first 3x3 conv keeps the spatial size {first.input.shape[-1]}: "
                                 "the stride belongs to the (first) 3x3 convolution of the branch")


def same_values(a: Tensor, b: Tensor) -> bool:
    """Equal shapes and values, to float tolerance."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


class Wiring:
    """One forward pass of a block with random weights, its convolutions and BatchNorms found by the role each plays:
    the layer that reads a given tensor. A block in any style (modules, nn.Sequential, F.conv2d, torchvision's
    layout) is found the same way; a layer that is not what the diagram says (an affine map where a BatchNorm
    belongs) is not found, and the FAIL names the layer the diagram expected."""

    def __init__(self, block: nn.Module, inputs: Tensor, call: str, training: bool, seed: int) -> None:
        randomize_weights(block, seed)
        self.call, self.mode = call, "train()" if training else "eval()"
        self.ops, self.output = trace_layers(block.train(training), inputs)
        self.training = training

    def _find(self, kind: str, reads: Tensor, what: str, kernel: tuple[int, ...] | None = None,
              out_channels: int | None = None) -> LayerOp:
        for op in self.ops:
            if op.kind == kind and (kernel is None or op.kernel == kernel) and \
                    (out_channels is None or op.out_channels == out_channels) and same_values(op.input, reads):
                if kind == "norm" and op.training != self.training:
                    raise PropertyFailed(f"in {self.mode} a BatchNorm of {self.call} uses "
                                         f"{'running' if self.training else 'batch'} statistics: let nn.BatchNorm2d "
                                         "follow the module's mode")
                return op
        raise PropertyFailed(f"in {self.mode}, with random weights, {self.call} has no {what}: wire the layers as "
                             "the diagram draws them")

    def conv(self, reads: Tensor, kernel: int, what: str, out_channels: int | None = None) -> LayerOp:
        """The convolution of this kernel size (and output channels) that reads `reads`."""
        return self._find("conv", reads, what, (kernel, kernel), out_channels)

    def norm(self, reads: Tensor, what: str) -> LayerOp:
        """The BatchNorm that reads `reads`."""
        return self._find("norm", reads, what)

    def expect_one_of(self, accepted: list[Tensor], otherwise: str) -> None:
        """The block returns one of these (what else is right is another property's to judge)."""
        if not any(same_values(self.output, value) for value in accepted):
            raise PropertyFailed(f"in {self.mode}, with random weights, {otherwise} in {self.call}")

    def expect_output(self, expected: Tensor, mistakes: dict[str, Tensor]) -> None:
        """The block returns `expected`; a known mistake's output, or anything else, fails with what it is."""
        if same_values(self.output, expected):
            return
        for hint, mistaken in mistakes.items():
            if same_values(self.output, mistaken):
                raise PropertyFailed(f"in {self.mode}, with random weights, {self.call} {hint}")
        raise PropertyFailed(f"in {self.mode}, with random weights, the output of {self.call} is not what its layers "
                             "compute in the diagram's order: branch, plus shortcut, then what follows the addition")


def bias_hints(*amounts: int) -> dict[int, str]:
    """Parameter surpluses that mean "your convolutions have biases"."""
    return dict.fromkeys(amounts, "your convolutions have biases: pass bias=False (BatchNorm's shift makes them "
                                  "redundant)")
