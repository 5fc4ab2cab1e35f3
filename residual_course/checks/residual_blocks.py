"""Checks for lesson 04's blocks: BasicBlock, Bottleneck and PreActBlock, judged by behaviour alone."""

from __future__ import annotations

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
from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import (
    build,
    expect_batchnorm_modes,
    expect_every_parameter_matters,
    name_of,
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


def _expect_batchnorm_modes(factory: BlockFactory, args: tuple[int, ...], device: torch.device) -> None:
    """BatchNorm uses batch statistics in train() and running statistics in eval()."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    inputs = random_tensor(device, 8, args[0], 8, 8)
    expect_batchnorm_modes(block, inputs, call, "nn.BatchNorm2d", "each convolution", run_block)


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


def _device_property(factory: BlockFactory, same: tuple[int, int, int]) -> Property:
    """Every block must run on the course device and pass the gradient back to its input."""
    return Property("device", "runs on the device and passes the gradient to its input",
                    lambda d: expect_block_device_and_gradient(factory, same, d))


def _expect_every_parameter(factory: BlockFactory, args: tuple[int, int, int], device: torch.device) -> None:
    """Every layer the block creates for these arguments takes part in its output."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    expect_every_parameter_matters(block, random_tensor(device, 4, args[0], 8, 8), call, run_block)


def _every_parameter_property(factory: BlockFactory, same: tuple[int, int, int]) -> Property:
    """Every layer of an identity-shortcut block takes part (the projection's are checked with the projection)."""
    return Property("every parameter", "every layer it creates takes part (gets a gradient, changes the output)",
                    lambda d: _expect_every_parameter(factory, same, d))


def _post_activation_properties(factory: BlockFactory, same: tuple[int, int, int]) -> list[Property]:
    """What BasicBlock and Bottleneck share: ReLU after the add, BatchNorm modes, device and gradient."""
    return [
        Property("relu after add", "zero branch gives relu(x): shortcut added, then ReLU",
                 lambda d: expect_zero_branch_gives(factory, same, d, final_relu=True)),
        Property("batchnorm", "BatchNorm: batch statistics in train(), running ones in eval()",
                 lambda d: _expect_batchnorm_modes(factory, same, d)),
        _device_property(factory, same),
    ]


# ---------------------------------------------------------------- the three blocks

def basic_block_properties(factory: BlockFactory, channels: int = 16) -> list[Property]:
    """Properties of BasicBlock(in_channels, out_channels, stride) from the exercise interface."""
    c = channels
    same = (c, c, 1)

    def identity(device: torch.device) -> None:
        _expect_block(factory, same, device, c, basic_block_params(*same), {
            **bias_hints(2 * c),
            c * c + 2 * c: "it has a projection although stride=1 and channels match: use the identity there",
            -4 * c: "it lacks BatchNorm: put nn.BatchNorm2d after each convolution",
        })

    def projection(device: torch.device) -> None:
        for args in [(c, 2 * c, 1), (c, c, 2), (c, 2 * c, 2)]:
            cin, cout, _ = args
            _expect_block(factory, args, device, cout, basic_block_params(*args), {
                **bias_hints(2 * cout, 3 * cout),
                -(cin * cout + 2 * cout): "the projection shortcut is missing (1x1 conv, no bias, + BatchNorm)",
                -2 * cout: "the projection needs a BatchNorm after its 1x1 conv",
                8 * cin * cout: "the projection is a 1x1 convolution, not 3x3",
            }, stride_in_3x3=True)
        _expect_every_parameter(factory, (c, 2 * c, 2), device)

    return [
        Property("identity", "shape and parameter count with an identity shortcut", identity),
        Property("projection", "projection shortcut exactly when stride or channels change", projection),
        *_post_activation_properties(factory, same),
        _every_parameter_property(factory, same),
    ]


def bottleneck_properties(factory: BlockFactory, mid_channels: int = 8) -> list[Property]:
    """Properties of Bottleneck(in_channels, mid_channels, stride): output has 4 * mid_channels channels."""
    m = mid_channels
    same = (4 * m, m, 1)

    def identity(device: torch.device) -> None:
        _expect_block(factory, same, device, 4 * m, bottleneck_params(*same), {
            **bias_hints(6 * m),
            16 * m * m + 8 * m: "it has a projection although the shape does not change: use the identity there",
        })

    def projection(device: torch.device) -> None:
        for args in [(2 * m, m, 1), (4 * m, m, 2), (4 * m, 2 * m, 2)]:
            cin, mid, _ = args
            _expect_block(factory, args, device, 4 * mid, bottleneck_params(*args), {
                -(cin * 4 * mid + 8 * mid): "the projection shortcut is missing (1x1 conv, no bias, + BatchNorm)",
                -8 * mid: "the projection needs a BatchNorm after its 1x1 conv",
            }, stride_in_3x3=True)
        _expect_every_parameter(factory, (4 * m, 2 * m, 2), device)

    return [
        Property("identity", "shape and parameter count with an identity shortcut", identity),
        Property("projection", "projection shortcut exactly when stride or channels change; stride in the 3x3",
                 projection),
        *_post_activation_properties(factory, same),
        _every_parameter_property(factory, same),
    ]


def preact_block_properties(factory: BlockFactory, channels: int = 16) -> list[Property]:
    """Properties of PreActBlock(in_channels, out_channels, stride): BN-ReLU-conv twice, add, nothing after."""
    c = channels
    same = (c, c, 1)

    def identity(device: torch.device) -> None:
        _expect_block(factory, same, device, c, preact_block_params(*same), {
            **bias_hints(2 * c),
            c * c: "it has a projection although stride=1 and channels match: use the identity there",
        })

    def activation_before_convs(device: torch.device) -> None:
        block = build(factory, *same, device=device, call=block_call(factory, same)).eval()
        convs = trace_forward(block, random_tensor(device, 4, c, 8, 8), (nn.Conv2d,))
        if any(call.input_min < 0 for call in convs):
            raise PropertyFailed("a convolution receives negative inputs: in a pre-activation block every conv "
                                 "comes after BatchNorm and ReLU (BN -> ReLU -> conv, twice)")

    def projection(device: torch.device) -> None:
        for args in [(c, 2 * c, 1), (c, c, 2), (c, 2 * c, 2)]:
            cin, cout, _ = args
            _expect_block(factory, args, device, cout, preact_block_params(*args), {
                -cin * cout: "the projection shortcut is missing (a 1x1 conv with the block's stride, no bias)",
            })
        _expect_every_parameter(factory, (c, 2 * c, 2), device)

    return [
        Property("identity", "shape and parameter count with an identity shortcut", identity),
        Property("no relu after add", "zero branch gives x exactly: no ReLU after the addition",
                 lambda d: expect_zero_branch_gives(factory, same, d, final_relu=False)),
        Property("pre-activation", "each conv sees BatchNorm + ReLU output (pre-activation order)",
                 activation_before_convs),
        Property("projection", "projection shortcut exactly when stride or channels change", projection),
        _device_property(factory, same),
        _every_parameter_property(factory, same),
    ]


def check_basic_block(factory: BlockFactory, only: str | list[str] | None = None, channels: int = 16) -> None:
    """Check a learner's BasicBlock and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "block"), basic_block_properties(factory, channels), only)


def check_bottleneck(factory: BlockFactory, only: str | list[str] | None = None, mid_channels: int = 8) -> None:
    """Check a learner's Bottleneck and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "block"), bottleneck_properties(factory, mid_channels), only)


def check_preact_block(factory: BlockFactory, only: str | list[str] | None = None, channels: int = 16) -> None:
    """Check a learner's PreActBlock and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "block"), preact_block_properties(factory, channels), only)
