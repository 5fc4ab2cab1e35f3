"""Checks for lesson 08: ResNeXt's grouped block and DenseNet's layer, block and transition, judged by behaviour."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks import block_probes
from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import Clash, build, expect_device_and_gradient, probe_size, random_tensor, run
from residual_course.formulas import (
    count_parameters,
    dense_block_params,
    dense_layer_params,
    resnext_block_params,
    transition_params,
)
from residual_course.probes import trace_forward

ModuleFactory = Callable[..., nn.Module]

CONCATENATE = "DenseNet concatenates, it does not add: return torch.cat([x, new_features], dim=1)"


# ---------------------------------------------------------------- ResNeXt

_RESNEXT_CLASH = Clash(("must match the size of tensor",), "at the addition",
                       "branch and shortcut differ in shape. The grouped 3x3 conv needs padding=1 and takes the "
                       "stride; when the stride or the channel count changes, the shortcut is a 1x1 conv with that "
                       "stride (bias=False) + BatchNorm")


def _expect_resnext_shape(block: nn.Module, inputs: Tensor, expected: tuple[int, ...], call: str) -> None:
    """Run the block and compare the output shape with the expected one."""
    output = run(block, inputs, call, [_RESNEXT_CLASH])
    if tuple(output.shape) != expected:
        raise PropertyFailed(f"{call} maps {tuple(inputs.shape)} to {tuple(output.shape)}, expected {expected}: the "
                             "grouped 3x3 conv needs padding=1 and takes the stride (the 1x1 convs keep the size), "
                             "and the last 1x1 conv has out_channels")


def _expect_cardinality(block: nn.Module, inputs: Tensor, cardinality: int, bottleneck_width: int, call: str) -> None:
    """The 3x3 convolutions that run split the channels into `cardinality` independent groups."""
    convs = [c.module for c in trace_forward(block, inputs, (nn.Conv2d,)) if c.module.kernel_size == (3, 3)]
    if not convs:
        raise PropertyFailed(f"{call} runs no 3x3 convolution")
    paths = sum(conv.groups for conv in convs)  # one grouped conv (Fig. 3c), or one conv per path (Fig. 3b)
    if paths == cardinality:
        return
    if paths == bottleneck_width:
        raise PropertyFailed(
            f"{call} runs its 3x3 conv with groups={paths}, i.e. groups = channels // cardinality: that mixes up "
            f"the two numbers. Cardinality IS the number of groups: use groups=cardinality ({cardinality}), so that "
            f"each group has bottleneck_width ({bottleneck_width}) channels")
    if paths == 1:
        raise PropertyFailed(f"{call} runs an ordinary 3x3 conv (groups=1): make it grouped, groups=cardinality "
                             f"({cardinality})")
    raise PropertyFailed(f"the 3x3 convolution(s) of {call} have {paths} groups in all, expected cardinality = "
                         f"{cardinality}: pass groups=cardinality to the 3x3 conv")


def _resnext_same(cardinality: int, bottleneck_width: int, channels: int) -> tuple[int, ...]:
    """ResNeXtBlock's arguments without a change of shape: channels in and out, stride 1."""
    return channels, channels, cardinality, bottleneck_width, 1


def _resnext_wider(cardinality: int, bottleneck_width: int, channels: int) -> tuple[int, ...]:
    """ResNeXtBlock's arguments with twice the channels out and stride 2."""
    return channels, 2 * channels, cardinality, bottleneck_width, 2


check_resnext_block = Check("block", "Check a learner's ResNeXtBlock(in_channels, out_channels, cardinality, "
                            "bottleneck_width, stride) (1x1, grouped 3x3 with groups = cardinality, 1x1, plus a "
                            "shortcut, then ReLU) and print one PASS/FAIL line per property.",
                            derived={"same": _resnext_same, "wider": _resnext_wider},
                            cardinality=8, bottleneck_width=2, channels=32)


@check_resnext_block.property("shape", "output shape, with and without a change of shape")
def _expect_resnext_shapes(factory: ModuleFactory, device: torch.device, channels: int, same: tuple[int, ...],
                           wider: tuple[int, ...]) -> None:
    """The output shape, for the same shape and for twice the channels at stride 2."""
    for args in (same, wider):
        stride = args[-1]
        call = block_probes.block_call(factory, args)
        block = build(factory, *args, device=device, call=call)
        inputs = block_probes.probe_input(device, channels)
        _expect_resnext_shape(block, inputs, block_probes.strided_shape(inputs, args[1], stride), call)


@check_resnext_block.property("parameters", "parameter count matches the formula (grouped 3x3 conv)")
def _expect_resnext_parameters(factory: ModuleFactory, device: torch.device, cardinality: int, bottleneck_width: int,
                               same: tuple[int, ...], wider: tuple[int, ...]) -> None:
    """The parameter count is the formula's, with the 3x3 conv grouped into `cardinality` groups."""
    C, width = cardinality, cardinality * bottleneck_width
    for args in (same, wider):
        expected = resnext_block_params(*args)
        hints = {
            **block_probes.bias_hints(2 * width + args[1], 2 * width + 2 * args[1]),
            resnext_block_params(*args, groups=1) - expected:
                f"that is the count of an ordinary 3x3 conv: make it grouped, groups=cardinality ({C})",
        }
        if width // C != C:
            hints[resnext_block_params(*args, groups=width // C) - expected] = (
                f"that is the count with groups = channels // cardinality = {width // C}, a widely copied "
                f"mix-up: cardinality IS the number of groups, so use groups=cardinality ({C}); the 3x3 conv then "
                f"has 9 * {width} * {width} / {C} weights")
        call = block_probes.block_call(factory, args)
        block = build(factory, *args, device=device, call=call)
        block_probes.expect_params(block, expected, call, hints)


@check_resnext_block.property("groups", "the 3x3 conv that runs has groups == cardinality")
def _expect_resnext_groups(factory: ModuleFactory, device: torch.device, cardinality: int, bottleneck_width: int,
                           channels: int, same: tuple[int, ...]) -> None:
    """The 3x3 convolution(s) that run have `cardinality` groups in all."""
    call = block_probes.block_call(factory, same)
    block = build(factory, *same, device=device, call=call).eval()
    _expect_cardinality(block, block_probes.probe_input(device, channels), cardinality, bottleneck_width, call)


@check_resnext_block.property("relu after add", "zero branch gives relu(x): shortcut added, then ReLU")
def _expect_resnext_relu_after_add(factory: ModuleFactory, device: torch.device, same: tuple[int, ...]) -> None:
    """With every parameter at zero the block returns relu(x): shortcut added, then ReLU."""
    block_probes.expect_zero_branch_gives(factory, same, device, final_relu=True)


@check_resnext_block.property("projection",
                              "projection shortcut exactly when stride or channels change; stride in the 3x3")
def _expect_resnext_projection(factory: ModuleFactory, device: torch.device, cardinality: int, bottleneck_width: int,
                               channels: int, same: tuple[int, ...], wider: tuple[int, ...]) -> None:
    """A 1x1 conv-BN shortcut exactly when the stride or the channels change, and the stride in the 3x3 conv."""
    c, C, d, width = channels, cardinality, bottleneck_width, cardinality * bottleneck_width
    # Measured against the learner's own identity block, so this property does not depend on the grouping.
    base = count_parameters(build(factory, *same, device=device, call=block_probes.block_call(factory, same)))
    for args in [(c, c, C, d, 2), (c, 2 * c, C, d, 1), wider]:
        cin, cout, stride = args[0], args[1], args[-1]
        call = block_probes.block_call(factory, args)
        block = build(factory, *args, device=device, call=call)
        inputs = block_probes.probe_input(device, cin)
        _expect_resnext_shape(block, inputs, block_probes.strided_shape(inputs, cout, stride), call)
        last_conv_growth = width * (cout - cin) + 2 * (cout - cin)  # the last 1x1 conv and its BN get wider
        extra, wanted = count_parameters(block) - base - last_conv_growth, cin * cout + 2 * cout
        hints = {
            0: "it has as many parameters as the block without a shape change: add the projection exactly when "
               "stride != 1 or channels change, and use the identity otherwise",
            cin * cout: "the projection needs a BatchNorm after its 1x1 conv",
            9 * cin * cout + 2 * cout: "the projection is a 1x1 convolution, not 3x3",
            wanted + cout: "the projection's conv has a bias: pass bias=False",
        }
        if extra != wanted:
            raise PropertyFailed(f"{call}: its shortcut has {extra:,} parameters, expected {wanted:,} "
                                 f"(1x1 conv + BatchNorm): {hints.get(extra, 'compare it with the diagram')}")
        if stride != 1:
            block_probes.expect_stride_in_first_3x3(block.eval(), inputs, call)


@check_resnext_block.property("device", "runs on the device and passes the gradient to its input")
def _expect_resnext_on_device(factory: ModuleFactory, device: torch.device, same: tuple[int, ...]) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    block_probes.expect_block_device_and_gradient(factory, same, device)


# ---------------------------------------------------------------- DenseNet

_DENSE_CLASHES = (
    Clash(("must match the size of tensor",), "at an addition", CONCATENATE),
    Clash(("Sizes of tensors must match",), "at a concatenation",
          "the new features must keep the height and width of x (padding=1 in the 3x3 conv)"),
)


def _forward(module: nn.Module, inputs: Tensor, call: str) -> Tensor:
    """Forward pass that turns a failed addition into the sentence every DenseNet learner needs."""
    return run(module, inputs, call, _DENSE_CLASHES)


def _expect_concatenated(module: nn.Module, in_channels: int, added: int, call: str, device: torch.device) -> None:
    """The output is the input, unchanged, followed by `added` new channels, at the input's height and width."""
    inputs = block_probes.probe_input(device, in_channels)
    kept = inputs.clone()
    with torch.no_grad():
        output = _forward(module.eval(), inputs, call)
    expected = block_probes.strided_shape(inputs, in_channels + added, 1)
    if tuple(output.shape) != expected:
        got = tuple(output.shape)
        if got == tuple(kept.shape):
            hint = (f"as many channels as its input, so the new features were added to x. {CONCATENATE}; each "
                    f"layer then adds growth_rate channels")
        elif got[1] == added:
            hint = "only the new features: return torch.cat([x, new_features], dim=1), the input first"
        else:
            hint = ("the height and width must stay (padding=1 in the 3x3 conv), each layer adds growth_rate new "
                    "channels, and the output is torch.cat([x, new_features], dim=1)")
        raise PropertyFailed(f"{call} maps {tuple(kept.shape)} to {got}, expected {expected}: {hint}")
    if torch.equal(output[:, :in_channels], kept):
        return
    if torch.equal(output[:, added:], kept):
        raise PropertyFailed(f"in {call} the input comes last: put it first, torch.cat([x, new_features], dim=1), so "
                             "every feature map keeps its channel position as the block grows")
    raise PropertyFailed(f"the first {in_channels} output channels of {call} are not its input: x must pass through "
                         f"unchanged (no in-place ops on x), with the new features concatenated after it. "
                         f"{CONCATENATE}")


def _dense_layer_args(in_channels: int, growth_rate: int) -> tuple[int, ...]:
    """DenseLayer's constructor arguments."""
    return in_channels, growth_rate


def _dense_block_args(num_layers: int, in_channels: int, growth_rate: int) -> tuple[int, ...]:
    """DenseBlock's constructor arguments."""
    return num_layers, in_channels, growth_rate


def _transition_args(in_channels: int, out_channels: int) -> tuple[int, ...]:
    """Transition's constructor arguments."""
    return in_channels, out_channels


# ---------------------------------------------------------------- DenseLayer

check_dense_layer = Check("block", "Check a learner's DenseLayer(in_channels, growth_rate) (BN-ReLU-conv1x1(4k)-BN-"
                          "ReLU-conv3x3(k), new features concatenated after the input) and print one PASS/FAIL line "
                          "per property.", derived={"args": _dense_layer_args}, in_channels=10, growth_rate=6)


@check_dense_layer.property("concatenation",
                            "output = cat([x, new features]): x unchanged first, growth_rate new channels")
def _expect_layer_concatenates(factory: ModuleFactory, device: torch.device, in_channels: int,
                               growth_rate: int) -> None:
    """For two input widths the output is x unchanged, then growth_rate new channels, at x's height and width."""
    c, k = in_channels, growth_rate
    for cin in (c, c + k):
        call = block_probes.block_call(factory, (cin, k))
        _expect_concatenated(build(factory, cin, k, device=device, call=call), cin, k, call, device)


@check_dense_layer.property("parameters", "parameter count matches the formula (BN-ReLU-conv1x1-BN-ReLU-conv3x3)")
def _expect_layer_parameters(factory: ModuleFactory, device: torch.device, in_channels: int, growth_rate: int,
                             args: tuple[int, ...]) -> None:
    """The parameter count is DenseNet-BC's: BatchNorm(in), 1x1 conv to 4k, BatchNorm(4k), 3x3 conv to k."""
    c, k = in_channels, growth_rate
    expected = dense_layer_params(c, k)
    call = block_probes.block_call(factory, args)
    block_probes.expect_params(build(factory, *args, device=device, call=call), expected, call, {
        **block_probes.bias_hints(5 * k),
        2 * c + 9 * c * k - expected: "there is no 1x1 bottleneck: BN-ReLU-conv1x1 to 4 * growth_rate channels "
                                      "comes before the 3x3 conv (DenseNet-BC)",
        2 * k - 2 * c: "the BatchNorms sit after the convs: DenseNet's order is BN-ReLU-conv, so the first "
                       "BatchNorm normalises the layer's in_channels inputs",
    })


# ---------------------------------------------------------------- DenseBlock

check_dense_block = Check("block", "Check a learner's DenseBlock(num_layers, in_channels, growth_rate) (num_layers "
                          "DenseLayers, each seeing all the features before it) and print one PASS/FAIL line per "
                          "property.", derived={"args": _dense_block_args}, num_layers=3, in_channels=10,
                          growth_rate=6)


@check_dense_block.property("growth",
                            "num_layers layers, each adding growth_rate channels after the unchanged input")
def _expect_block_growth(factory: ModuleFactory, device: torch.device, num_layers: int, in_channels: int,
                         growth_rate: int, args: tuple[int, ...]) -> None:
    """The output is x unchanged, then num_layers * growth_rate new channels, at x's height and width."""
    call = block_probes.block_call(factory, args)
    _expect_concatenated(build(factory, *args, device=device, call=call), in_channels, num_layers * growth_rate,
                         call, device)


@check_dense_block.property("parameters", "parameter count: layer i has in_channels + i * growth_rate inputs")
def _expect_block_parameters(factory: ModuleFactory, device: torch.device, num_layers: int, in_channels: int,
                             growth_rate: int, args: tuple[int, ...]) -> None:
    """The parameter count is that of num_layers DenseLayers, layer i with in_channels + i * growth_rate inputs."""
    expected = dense_block_params(*args)
    call = block_probes.block_call(factory, args)
    block_probes.expect_params(build(factory, *args, device=device, call=call), expected, call, {
        num_layers * dense_layer_params(in_channels, growth_rate) - expected:
            "every layer has in_channels inputs: layer i must see all the features so far, "
            "DenseLayer(in_channels + i * growth_rate, growth_rate)",
    })


# ---------------------------------------------------------------- Transition

check_transition = Check("block", "Check a learner's Transition(in_channels, out_channels) (BN-ReLU-conv1x1-"
                         "AvgPool2d(2)) and print one PASS/FAIL line per property.",
                         derived={"args": _transition_args}, in_channels=12, out_channels=6)


@check_transition.property("downsampling", "1x1 conv to out_channels, then average pooling halves H and W")
def _expect_transition_downsamples(factory: ModuleFactory, device: torch.device, in_channels: int,
                                   out_channels: int, args: tuple[int, ...]) -> None:
    """(N, in, H, W) becomes (N, out, H/2, W/2), by average pooling, not max pooling."""
    c, o = in_channels, out_channels
    call = block_probes.block_call(factory, args)
    transition = build(factory, *args, device=device, call=call).eval()
    side = 2 * probe_size(3, 5, "even side")
    inputs = random_tensor(device, block_probes.probe_batch(9), c, side, side)
    with torch.no_grad():
        got = tuple(_forward(transition, inputs, call).shape)
    if got[2:] == (side, side):
        raise PropertyFailed(f"{call} keeps the height and width {side}x{side}: a transition ends with "
                             "nn.AvgPool2d(2), which halves them")
    expected = block_probes.strided_shape(inputs, o, 2)
    if got != expected:
        raise PropertyFailed(f"{call} maps {tuple(inputs.shape)} to {got}, expected {expected}: a 1x1 conv to "
                             "out_channels, then nn.AvgPool2d(2)")
    if trace_forward(transition, inputs, (nn.MaxPool2d,)):
        raise PropertyFailed(f"{call} uses max pooling: DenseNet's transition averages, nn.AvgPool2d(2)")


@check_transition.property("parameters", "parameter count: BatchNorm(in) + 1x1 conv")
def _expect_transition_parameters(factory: ModuleFactory, device: torch.device, in_channels: int,
                                  out_channels: int, args: tuple[int, ...]) -> None:
    """The parameter count is that of BatchNorm(in_channels) and a bias-free 1x1 conv."""
    c, o = in_channels, out_channels
    expected = transition_params(c, o)
    call = block_probes.block_call(factory, args)
    block_probes.expect_params(build(factory, *args, device=device, call=call), expected, call, {
        **block_probes.bias_hints(o),
        2 * o - 2 * c: "the BatchNorm sits after the conv: the order is BN-ReLU-conv1x1-AvgPool2d(2)",
        8 * c * o: "the transition's conv is 1x1, not 3x3",
    })


# ---------------------------------------------------------------- shared by the DenseNet parts

@check_dense_layer.property("device", "runs on the device and passes the gradient to its input")
@check_dense_block.property("device", "runs on the device and passes the gradient to its input")
@check_transition.property("device", "runs on the device and passes the gradient to its input")
def _expect_dense_part_on_device(factory: ModuleFactory, device: torch.device, in_channels: int,
                                 args: tuple[int, ...]) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    call = block_probes.block_call(factory, args)
    module = build(factory, *args, device=device, call=call)
    expect_device_and_gradient(module, block_probes.probe_input(device, in_channels), device, call, _forward)
