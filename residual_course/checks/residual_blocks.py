"""Checks for lesson 04's blocks: BasicBlock, Bottleneck and PreActBlock, judged by behaviour alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks.block_probes import (
    BlockFactory,
    bias_hints,
    block_call,
    expect_block_device_and_gradient,
    expect_params,
    expect_stride_in_first_3x3,
    expect_zero_branch_gives,
    run_block,
)
from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import (
    build,
    expect_batchnorm_modes,
    expect_every_parameter_matters,
    random_tensor,
)
from residual_course.formulas import basic_block_params, bottleneck_params, preact_block_params
from residual_course.probes import trace_forward

# ---------------------------------------------------------------- lesson 04's probes

def _expect_shape(block: nn.Module, inputs: Tensor, expected: tuple[int, ...], call: str) -> Tensor:
    """Run the block and compare the output shape with the expected one."""
    output = run_block(block, inputs, call)
    if tuple(output.shape) != expected:
        raise PropertyFailed(
            f"{call} maps {tuple(inputs.shape)} to {tuple(output.shape)}, expected {expected}: "
            "3x3 convs need padding=1, and only the first conv of the branch (and the shortcut) takes the stride"
        )
    return output


def _expect_block(factory: BlockFactory, args: tuple[int, int, int], device: torch.device, out_channels: int,
                  params: int | set[int], hints: dict[int, str], stride_in_3x3: bool = False) -> None:
    """Build the block for `args`, run it, and compare its output shape and parameter count with the formula."""
    in_channels, _, stride = args
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    inputs = random_tensor(device, 4, in_channels, 8, 8)
    _expect_shape(block, inputs, (4, out_channels, 8 // stride, 8 // stride), call)
    expect_params(block, params, call, hints)
    if stride_in_3x3 and stride != 1:
        expect_stride_in_first_3x3(block.eval(), inputs, call)


def _expect_every_parameter(factory: BlockFactory, args: tuple[int, int, int], device: torch.device) -> None:
    """Every layer the block creates for these arguments takes part in its output."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    expect_every_parameter_matters(block, random_tensor(device, 4, args[0], 8, 8), call, run_block)


def _expect_projections(factory: BlockFactory, device: torch.device, changes: list[tuple[int, int, int]],
                        formula: Callable[..., int], hints: Callable[[int, int], dict[int, str]], expansion: int = 1,
                        stride_in_3x3: bool = False) -> None:
    """Shape and parameter count of each block that needs a projection; every layer of the last one takes part."""
    for args in changes:
        _expect_block(factory, args, device, expansion * args[1], formula(*args), hints(*args[:2]), stride_in_3x3)
    _expect_every_parameter(factory, changes[-1], device)


def _square_same(channels: int) -> tuple[int, int, int]:
    """BasicBlock's and PreActBlock's arguments for an identity shortcut: (channels, channels, stride 1)."""
    return channels, channels, 1


def _square_changes(channels: int) -> list[tuple[int, int, int]]:
    """BasicBlock's and PreActBlock's arguments that need a projection: more channels, stride 2, or both."""
    return [(channels, 2 * channels, 1), (channels, channels, 2), (channels, 2 * channels, 2)]


def _bottleneck_same(mid_channels: int) -> tuple[int, int, int]:
    """Bottleneck's arguments for an identity shortcut: 4 * mid_channels in, mid_channels, stride 1."""
    return 4 * mid_channels, mid_channels, 1


def _bottleneck_changes(mid_channels: int) -> list[tuple[int, int, int]]:
    """Bottleneck's arguments that need a projection: fewer channels in, stride 2, or wider with stride 2."""
    m = mid_channels
    return [(2 * m, m, 1), (4 * m, m, 2), (4 * m, 2 * m, 2)]


check_basic_block = Check("block", "Check a learner's BasicBlock(in_channels, out_channels, stride) (conv3x3-BN-ReLU-"
                          "conv3x3-BN, plus a shortcut, then ReLU) and print one PASS/FAIL line per property.",
                          derived={"same": _square_same, "changes": _square_changes}, channels=16)


check_bottleneck = Check("block", "Check a learner's Bottleneck(in_channels, mid_channels, stride) (1x1 reduce, 3x3 "
                         "with the stride, 1x1 expand to 4 * mid_channels, a shortcut, then ReLU) and print one "
                         "PASS/FAIL line per property.",
                         derived={"same": _bottleneck_same, "changes": _bottleneck_changes}, mid_channels=8)


check_preact_block = Check("block", "Check a learner's PreActBlock(in_channels, out_channels, stride) ((BN-ReLU-"
                           "conv3x3) twice, plus a shortcut, nothing after the addition) and print one PASS/FAIL line "
                           "per property.", derived={"same": _square_same, "changes": _square_changes}, channels=16)


# ---------------------------------------------------------------- BasicBlock

@check_basic_block.property("identity", "shape and parameter count with an identity shortcut")
def _expect_basic_identity(factory: BlockFactory, device: torch.device, channels: int,
                           same: tuple[int, int, int]) -> None:
    """With stride 1 and equal channels: output shape kept, parameters of two 3x3 conv-BN pairs and no projection."""
    c = channels
    _expect_block(factory, same, device, c, basic_block_params(*same), {
        **bias_hints(2 * c),
        c * c + 2 * c: "it has a projection although stride=1 and channels match: use the identity there",
        -4 * c: "it lacks BatchNorm: put nn.BatchNorm2d after each convolution",
    })


@check_basic_block.property("projection", "projection shortcut exactly when stride or channels change")
def _expect_basic_projection(factory: BlockFactory, device: torch.device,
                             changes: list[tuple[int, int, int]]) -> None:
    """When the stride or the channels change: shape, parameters with a 1x1 conv-BN shortcut, stride in the 3x3."""
    _expect_projections(factory, device, changes, basic_block_params, lambda cin, cout: {
        **bias_hints(2 * cout, 3 * cout),
        -(cin * cout + 2 * cout): "the projection shortcut is missing (1x1 conv, no bias, + BatchNorm)",
        -2 * cout: "the projection needs a BatchNorm after its 1x1 conv",
        8 * cin * cout: "the projection is a 1x1 convolution, not 3x3",
    }, stride_in_3x3=True)


# ---------------------------------------------------------------- Bottleneck

@check_bottleneck.property("identity", "shape and parameter count with an identity shortcut")
def _expect_bottleneck_identity(factory: BlockFactory, device: torch.device, mid_channels: int,
                                same: tuple[int, int, int]) -> None:
    """With stride 1 and 4 * mid_channels in: output shape kept, parameters of the three conv-BN pairs only."""
    m = mid_channels
    _expect_block(factory, same, device, 4 * m, bottleneck_params(*same), {
        **bias_hints(6 * m),
        16 * m * m + 8 * m: "it has a projection although the shape does not change: use the identity there",
    })


@check_bottleneck.property("projection",
                           "projection shortcut exactly when stride or channels change; stride in the 3x3")
def _expect_bottleneck_projection(factory: BlockFactory, device: torch.device,
                                  changes: list[tuple[int, int, int]]) -> None:
    """When the stride or the channels change: shape, parameters with a 1x1 conv-BN shortcut, stride in the 3x3."""
    _expect_projections(factory, device, changes, bottleneck_params, lambda cin, mid: {
        -(cin * 4 * mid + 8 * mid): "the projection shortcut is missing (1x1 conv, no bias, + BatchNorm)",
        -8 * mid: "the projection needs a BatchNorm after its 1x1 conv",
    }, expansion=4, stride_in_3x3=True)


# ---------------------------------------------------------------- PreActBlock

@check_preact_block.property("identity", "shape and parameter count with an identity shortcut")
def _expect_preact_identity(factory: BlockFactory, device: torch.device, channels: int,
                            same: tuple[int, int, int]) -> None:
    """With stride 1 and equal channels: output shape kept, parameters of two BN-conv pairs and no projection."""
    c = channels
    _expect_block(factory, same, device, c, preact_block_params(*same), {
        **bias_hints(2 * c),
        c * c: "it has a projection although stride=1 and channels match: use the identity there",
    })


@check_preact_block.property("no relu after add", "zero branch gives x exactly: no ReLU after the addition")
def _expect_no_relu_after_add(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """With every parameter at zero the block returns x itself: nothing runs after the addition."""
    expect_zero_branch_gives(factory, same, device, final_relu=False)


@check_preact_block.property("pre-activation", "each conv sees BatchNorm + ReLU output (pre-activation order)")
def _expect_activation_before_convs(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """No convolution receives a negative input: each comes after BatchNorm and ReLU."""
    block = build(factory, *same, device=device, call=block_call(factory, same)).eval()
    convs = trace_forward(block, random_tensor(device, 4, same[0], 8, 8), (nn.Conv2d,))
    if any(call.input_min < 0 for call in convs):
        raise PropertyFailed("a convolution receives negative inputs: in a pre-activation block every conv "
                             "comes after BatchNorm and ReLU (BN -> ReLU -> conv, twice)")


@check_preact_block.property("projection", "projection shortcut exactly when stride or channels change")
def _expect_preact_projection(factory: BlockFactory, device: torch.device,
                              changes: list[tuple[int, int, int]]) -> None:
    """When the stride or the channels change: shape, and parameters with a bias-free 1x1 conv shortcut."""
    _expect_projections(factory, device, changes, preact_block_params, lambda cin, cout: {
        -cin * cout: "the projection shortcut is missing (a 1x1 conv with the block's stride, no bias)",
    })


# ---------------------------------------------------------------- shared by the blocks, on their identity arguments

@check_basic_block.property("relu after add", "zero branch gives relu(x): shortcut added, then ReLU")
@check_bottleneck.property("relu after add", "zero branch gives relu(x): shortcut added, then ReLU")
def _expect_relu_after_add(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """With every parameter at zero a post-activation block returns relu(x): shortcut added, then ReLU."""
    expect_zero_branch_gives(factory, same, device, final_relu=True)


@check_basic_block.property("batchnorm", "BatchNorm: batch statistics in train(), running ones in eval()")
@check_bottleneck.property("batchnorm", "BatchNorm: batch statistics in train(), running ones in eval()")
def _expect_batchnorm_modes(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """BatchNorm uses batch statistics in train() and running statistics in eval()."""
    call = block_call(factory, same)
    block = build(factory, *same, device=device, call=call)
    inputs = random_tensor(device, 8, same[0], 8, 8)
    expect_batchnorm_modes(block, inputs, call, "nn.BatchNorm2d", "each convolution", run_block)


@check_basic_block.property("device", "runs on the device and passes the gradient to its input")
@check_bottleneck.property("device", "runs on the device and passes the gradient to its input")
@check_preact_block.property("device", "runs on the device and passes the gradient to its input")
def _expect_on_device(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    expect_block_device_and_gradient(factory, same, device)


@check_basic_block.property("every parameter", "every layer it creates takes part (gets a gradient, changes the "
                            "output)")
@check_bottleneck.property("every parameter", "every layer it creates takes part (gets a gradient, changes the "
                           "output)")
@check_preact_block.property("every parameter", "every layer it creates takes part (gets a gradient, changes the "
                             "output)")
def _expect_every_layer_takes_part(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """Every layer of the identity-shortcut block takes part (the projection's are checked with the projection)."""
    _expect_every_parameter(factory, same, device)
