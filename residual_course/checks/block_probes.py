"""Probes of a residual block's behaviour that several lessons' checks share: lesson 04's blocks, lesson 07's ResNeXt
and DenseNet parts, lesson 03's residual MLP block (a zero branch, parameter counts, strides, device and gradient)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.report import PropertyFailed
from residual_course.checks.subjects import Clash, build, expect_device_and_gradient, name_of, random_tensor, run
from residual_course.formulas import count_parameters
from residual_course.probes import trace_forward

BlockFactory = Callable[..., nn.Module]

SHORTCUT_CLASH = Clash(("must match the size", "size of tensor"), "at the addition",
                       "when the stride or the channel count changes, the shortcut must change shape too; use a 1x1 "
                       "conv (that stride, bias=False) followed by BatchNorm")


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


def zero_branch_output(factory: BlockFactory, args: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """Input and output of an identity-shortcut block in eval mode whose parameters are all zero."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call).eval()
    zero_parameters(block)
    inputs = random_tensor(device, 4, args[0], 8, 8)
    with torch.no_grad():
        return inputs, run_block(block, inputs, call)


def expect_zero_branch_gives(factory: BlockFactory, args: tuple[int, ...], device: torch.device,
                             final_relu: bool) -> None:
    """With a zero branch a block returns relu(x) (post-activation) or x itself (pre-activation)."""
    inputs, output = zero_branch_output(factory, args, device)
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
    expect_device_and_gradient(block, random_tensor(device, 4, args[0], 8, 8), device, call, run_block)


def expect_stride_in_first_3x3(block: nn.Module, inputs: Tensor, call: str) -> None:
    """The first 3x3 conv that runs does the downsampling (as torchvision's ResNet v1.5 does)."""
    convs = [c for c in trace_forward(block, inputs, (nn.Conv2d,)) if c.module.kernel_size == (3, 3)]
    if not convs:
        raise PropertyFailed(f"{call} runs no 3x3 convolution")
    first = convs[0]
    if first.output_shape[-1] == first.input_shape[-1]:
        raise PropertyFailed(f"in {call} the first 3x3 conv keeps the spatial size {first.input_shape[-1]}: "
                             "the stride belongs to the (first) 3x3 convolution of the branch")


def bias_hints(*amounts: int) -> dict[int, str]:
    """Parameter surpluses that mean "your convolutions have biases"."""
    return dict.fromkeys(amounts, "your convolutions have biases: pass bias=False (BatchNorm's shift makes them "
                                  "redundant)")
