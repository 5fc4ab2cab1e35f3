"""Checks for lesson 05's blocks: BasicBlock, Bottleneck and PreActBlock, judged by behaviour alone.

Each block's diagram is written once below as its wiring: which layer reads which tensor. The "wiring" property
walks it on random weights in train and eval mode (block_probes.Wiring), so a block passes by computing the
diagram, whatever its style, and not by answering the probes' special cases.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.block_probes import (
    BlockFactory,
    Wiring,
    bias_hints,
    block_call,
    expect_block_device_and_gradient,
    expect_params,
    expect_stride_in_first_3x3,
    expect_zero_branch_gives,
    probe_input,
    run_block,
    same_values,
    strided_shape,
)
from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import build, expect_batchnorm_modes, expect_every_parameter_matters
from residual_course.formulas import basic_block_params, bottleneck_params, preact_block_params
from residual_course.probes import trace_layers

# ---------------------------------------------------------------- lesson 05's probes

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
    inputs = probe_input(device, in_channels)
    _expect_shape(block, inputs, strided_shape(inputs, out_channels, stride), call)
    expect_params(block, params, call, hints)
    if stride_in_3x3 and stride != 1:
        expect_stride_in_first_3x3(block.eval(), inputs, call)


def _expect_every_parameter(factory: BlockFactory, args: tuple[int, int, int], device: torch.device) -> None:
    """Every layer the block creates for these arguments takes part in its output."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    expect_every_parameter_matters(block, probe_input(device, args[0], seed=3), call, run_block)


def _expect_projections(factory: BlockFactory, device: torch.device, changes: list[tuple[int, int, int]],
                        formula: Callable[..., int], hints: Callable[[int, int], dict[int, str]], diagram: Diagram,
                        expansion: int = 1, stride_in_3x3: bool = False) -> None:
    """Shape and parameter count of each block that needs a projection, its projection wired into the sum (in both
    modes, random weights); every layer of the last one takes part."""
    for args in changes:
        _expect_block(factory, args, device, expansion * args[1], formula(*args), hints(*args[:2]), stride_in_3x3)
        for wiring, x in _wirings(factory, args, device):
            branch, shortcut, _ = diagram(wiring, x, args)
            wiring.expect_one_of([F.relu(branch + shortcut), branch + shortcut, F.relu(branch) + shortcut],
                                 "the projection's output is not what is added to the branch")
    _expect_every_parameter(factory, changes[-1], device)


# A block's diagram: given its wiring, its input and its arguments, the branch's last output, the shortcut's
# output, and what the block returns from them (with the outputs of its typical mistakes, and what each means).
Diagram = Callable[[Wiring, Tensor, tuple[int, int, int]], tuple[Tensor, Tensor, Callable[..., None]]]


def _wirings(factory: BlockFactory, args: tuple[int, int, int], device: torch.device) -> list[tuple[Wiring, Tensor]]:
    """The block for these arguments, traced with random weights in eval mode and in train mode."""
    call = block_call(factory, args)
    block = build(factory, *args, device=device, call=call)
    inputs = probe_input(device, args[0], seed=4)
    return [(Wiring(block, inputs, call, training, seed=5 + training), inputs) for training in (False, True)]


def _projection(wiring: Wiring, x: Tensor, out_channels: int, batchnorm: bool = True) -> Tensor:
    """The projection shortcut: a 1x1 conv (the block's stride) on x, then BatchNorm."""
    conv = wiring.conv(x, 1, f"1x1 projection convolution to {out_channels} channels reading the block's input x",
                       out_channels)
    return wiring.norm(conv.output, "BatchNorm after the 1x1 projection").output if batchnorm else conv.output


def _post_activation_output(wiring: Wiring, branch: Tensor, shortcut: Tensor) -> None:
    """relu(branch + shortcut), or the FAIL of the typical mistake the output matches."""
    wiring.expect_output(F.relu(branch + shortcut), {
        "applies the ReLU to the branch before adding the shortcut: no ReLU runs after the addition; apply the "
        "last ReLU to (branch + shortcut)": F.relu(branch) + shortcut,
        "returns branch + shortcut with no ReLU after the addition": branch + shortcut})


def _basic_block(wiring: Wiring, x: Tensor, args: tuple[int, int, int]) -> tuple[Tensor, Tensor, Callable]:
    """3x3 conv - BN - ReLU - 3x3 conv - BN, plus x or its projection, then ReLU."""
    in_channels, out_channels, stride = args
    conv1 = wiring.conv(x, 3, "3x3 convolution reading the block's input x", out_channels)
    bn1 = wiring.norm(conv1.output, "BatchNorm after the first 3x3 convolution")
    conv2 = wiring.conv(F.relu(bn1.output), 3, "second 3x3 convolution reading relu(BN(conv(x)))", out_channels)
    bn2 = wiring.norm(conv2.output, "BatchNorm after the second 3x3 convolution")
    projected = stride != 1 or in_channels != out_channels
    shortcut = _projection(wiring, x, out_channels) if projected else x
    return bn2.output, shortcut, _post_activation_output


def _bottleneck(wiring: Wiring, x: Tensor, args: tuple[int, int, int]) -> tuple[Tensor, Tensor, Callable]:
    """1x1 conv - BN - ReLU - 3x3 conv - BN - ReLU - 1x1 conv to 4x - BN, plus x or its projection, then ReLU."""
    in_channels, mid, stride = args
    conv1 = wiring.conv(x, 1, f"1x1 convolution to {mid} channels reading the block's input x", mid)
    bn1 = wiring.norm(conv1.output, "BatchNorm after the first 1x1 convolution")
    conv2 = wiring.conv(F.relu(bn1.output), 3, "3x3 convolution reading relu(BN(conv1x1(x)))", mid)
    bn2 = wiring.norm(conv2.output, "BatchNorm after the 3x3 convolution")
    conv3 = wiring.conv(F.relu(bn2.output), 1, f"1x1 convolution to {4 * mid} channels after the 3x3", 4 * mid)
    bn3 = wiring.norm(conv3.output, "BatchNorm after the last 1x1 convolution")
    projected = stride != 1 or in_channels != 4 * mid
    shortcut = _projection(wiring, x, 4 * mid) if projected else x
    return bn3.output, shortcut, _post_activation_output


def _preact_block(wiring: Wiring, x: Tensor, args: tuple[int, int, int]) -> tuple[Tensor, Tensor, Callable]:
    """BN - ReLU - 3x3 conv, twice, plus x or a 1x1 projection (of x or of relu(BN(x))), nothing after the add."""
    in_channels, out_channels, stride = args
    bn1 = wiring.norm(x, "BatchNorm reading the block's input x (pre-activation)")
    activated = F.relu(bn1.output)
    conv1 = wiring.conv(activated, 3, "3x3 convolution reading relu(BN(x))", out_channels)
    bn2 = wiring.norm(conv1.output, "BatchNorm after the first 3x3 convolution")
    conv2 = wiring.conv(F.relu(bn2.output), 3, "second 3x3 convolution reading relu(BN(conv(...)))", out_channels)
    shortcut = x
    if stride != 1 or in_channels != out_channels:
        reads = [op.input for op in wiring.ops if op.kind == "conv" and op.kernel == (1, 1)]
        source = activated if reads and any(same_values(r, activated) for r in reads) else x
        shortcut = _projection(wiring, source, out_channels, batchnorm=False)

    def nothing_after_the_add(wiring: Wiring, branch: Tensor, shortcut: Tensor) -> None:
        wiring.expect_output(branch + shortcut, {"applies a ReLU after the addition: a pre-activation block returns "
                                                 "branch + shortcut as is": F.relu(branch + shortcut)})

    return conv2.output, shortcut, nothing_after_the_add


def _expect_wired(factory: BlockFactory, device: torch.device, args: tuple[int, int, int], diagram: Diagram) -> None:
    """The block computes its diagram, in eval and in train mode, on random weights."""
    for wiring, x in _wirings(factory, args, device):
        branch, shortcut, expect_output = diagram(wiring, x, args)
        expect_output(wiring, branch, shortcut)


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
    }, _basic_block, stride_in_3x3=True)


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
    }, _bottleneck, expansion=4, stride_in_3x3=True)


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
    block = build(factory, *same, device=device, call=block_call(factory, same))
    for training in (False, True):
        convs = trace_layers(block.train(training), probe_input(device, same[0], seed=6))[0]
        if any(op.input.min() < 0 for op in convs if op.kind == "conv"):
            raise PropertyFailed("a convolution receives negative inputs: in a pre-activation block every conv "
                                 "comes after BatchNorm and ReLU (BN -> ReLU -> conv, twice)")


@check_preact_block.property("projection", "projection shortcut exactly when stride or channels change")
def _expect_preact_projection(factory: BlockFactory, device: torch.device,
                              changes: list[tuple[int, int, int]]) -> None:
    """When the stride or the channels change: shape, and parameters with a bias-free 1x1 conv shortcut."""
    _expect_projections(factory, device, changes, preact_block_params, lambda cin, cout: {
        -cin * cout: "the projection shortcut is missing (a 1x1 conv with the block's stride, no bias)",
    }, _preact_block)


# ---------------------------------------------------------------- shared by the blocks, on their identity arguments

@check_basic_block.property("wiring", "wired as the diagram, in train and eval mode, on random weights")
def _expect_basic_block_wiring(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """conv3x3 - BN - ReLU - conv3x3 - BN, plus x, then ReLU: each layer reads what the diagram feeds it."""
    _expect_wired(factory, device, same, _basic_block)


@check_bottleneck.property("wiring", "wired as the diagram, in train and eval mode, on random weights")
def _expect_bottleneck_wiring(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """1x1 - BN - ReLU - 3x3 - BN - ReLU - 1x1 - BN, plus x, then ReLU: each layer reads what the diagram feeds it."""
    _expect_wired(factory, device, same, _bottleneck)


@check_preact_block.property("wiring", "wired as the diagram, in train and eval mode, on random weights")
def _expect_preact_wiring(factory: BlockFactory, device: torch.device, same: tuple[int, int, int]) -> None:
    """(BN - ReLU - conv3x3) twice, plus x, nothing after: each layer reads what the diagram feeds it."""
    _expect_wired(factory, device, same, _preact_block)


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
    inputs = probe_input(device, same[0], seed=7)
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
