"""Checks for lesson 06's pieces of a ResNet: make_stage, a stage-level shortcut, the GAP head and ResNet itself.

Every check that needs blocks hands the learner's code a `ProbeBlock` of its own, never the learner's BasicBlock:
a mistake in that block (lesson 05) then costs no points here, and the probe remembers what it was asked to be.
The checks of ResNet stop the forward pass at the first block, or feed inputs that end as 1x1 feature maps, so that
a mistake in make_stage or in the GAP head does not fail them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.block_probes import zero_parameters
from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import Clash, build, expect_device_and_gradient, name_of, random_tensor, run
from residual_course.formulas import (
    IMAGENET_WIDTHS,
    count_parameters,
    gap_head_params,
    projection_params,
    resnet_params,
    stage_plan,
)
from residual_course.probes import Call, learn_layers, trace_forward

Factory = Callable[..., nn.Module]


# ---------------------------------------------------------------- the stand-in block and stage

class ProbeBlock(nn.Module):
    """A stand-in block that the checks pass as `block`: 3x3 conv (stride, no bias) - BN - ReLU.

    Not residual on purpose (the checks of this lesson must not depend on lesson 05's block). It remembers the
    arguments it was built with, so a check can see what the learner's code asked for.
    """

    expansion = 1  # torchvision-style code reads it; the course's interface does not need it

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.built_with = (in_channels, out_channels, stride)
        self.layers = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                                    nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        """conv-BN-ReLU."""
        return self.layers(x)


def probe_block_params(in_channels: int, out_channels: int, stride: int = 1) -> int:
    """Parameters of a ProbeBlock: one bias-free 3x3 conv and a BatchNorm."""
    return 9 * in_channels * out_channels + 2 * out_channels


class BlockRecorder:
    """A block factory with the course's interface that keeps every ProbeBlock it builds, in build order."""

    __name__ = "ProbeBlock"
    expansion = 1

    def __init__(self) -> None:
        self.built: list[ProbeBlock] = []

    def __call__(self, in_channels: int, out_channels: int, stride: int = 1) -> ProbeBlock:
        """Build one ProbeBlock and remember it."""
        block = ProbeBlock(in_channels, out_channels, stride)
        self.built.append(block)
        return block

    def arguments(self) -> list[tuple[int, int, int]]:
        """What each block was asked to be: (in_channels, out_channels, stride), in build order."""
        return [block.built_with for block in self.built]


def _probe_stage(in_channels: int, out_channels: int, stride: int, device: torch.device) -> nn.Module:
    """A small stage for StageWithShortcut: 3x3 conv (stride, no bias) + BN, random weights, on the device."""
    generator = torch.Generator(device=device).manual_seed(in_channels * 100 + out_channels * 10 + stride)
    stage = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                          nn.BatchNorm2d(out_channels)).to(device)
    with torch.no_grad():
        for parameter in stage.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, device=device))
    return stage


# ---------------------------------------------------------------- shared helpers

_CLASHES = (
    Clash(("shapes cannot be multiplied",), "at a Linear layer",
          "the features reaching it do not match its in_features; average each channel over all positions first "
          "(nn.AdaptiveAvgPool2d(1), then flatten), so the Linear layer sees exactly one number per channel whatever "
          "the image size"),
    Clash(("must match the size", "size of tensor"), "at an addition",
          "when the stride or the channel count changes, the shortcut must change shape too: a 1x1 conv with that "
          "stride (bias=False) followed by BatchNorm"),
    Clash(("channels, but got",), "at a convolution",
          "it is fed the wrong number of channels; each block must start from the channel count the previous one "
          "produced"),
)


def _run(module: nn.Module, inputs: Tensor, call: str) -> Tensor:
    """Forward pass that turns the usual shape and device clashes into sentences."""
    return run(module, inputs, call, _CLASHES)


def _expect_shape(output: Tensor, expected: tuple[int, ...], call: str, hint: str) -> None:
    """Compare an output shape with the expected one."""
    if tuple(output.shape) != expected:
        raise PropertyFailed(f"{call} returned shape {tuple(output.shape)}, expected {expected}: {hint}")


def _expect_registered(module: nn.Module, expected: int, call: str) -> None:
    """The module's parameters are exactly those of the blocks it was built from."""
    got = count_parameters(module)
    if got < expected:
        raise PropertyFailed(f"{call} holds {got:,} parameters, its blocks have {expected:,}: keep the blocks in "
                             "nn.Sequential (or nn.ModuleList), not in a Python list, and build each block anew "
                             "(reusing one block object shares its weights)")
    if got > expected:
        raise PropertyFailed(f"{call} holds {got:,} parameters, its blocks only {expected:,}: build the stage from "
                             "the blocks alone, with nothing added")


def _format(arguments: Sequence[tuple[int, int, int]]) -> str:
    """Block arguments as the learner would have typed them."""
    return ", ".join(f"block{args}" for args in arguments)


# ---------------------------------------------------------------- make_stage

check_make_stage = Check("make_stage", "Check a learner's make_stage(block, in_channels, out_channels, num_blocks, "
                         "stride) -> a stage of blocks and print one PASS/FAIL line per property.", channels=8)


def _build_stage(make_stage: Factory, device: torch.device, cin: int, cout: int, num_blocks: int,
                 stride: int) -> tuple[nn.Module, list[ProbeBlock], str]:
    """Call make_stage with a recording block factory; return the stage, the blocks it built and how it was called."""
    recorder = BlockRecorder()
    call = f"{name_of(make_stage, 'make_stage')}(block, {cin}, {cout}, num_blocks={num_blocks}, stride={stride})"
    stage = build(make_stage, recorder, cin, cout, num_blocks, stride, device=device, call=call, lent=(ProbeBlock,))
    return stage, recorder.built, call


@check_make_stage.property("blocks", "num_blocks blocks: the first changes the channels, the rest keep them")
def _expect_stage_blocks(make_stage: Factory, device: torch.device, channels: int) -> None:
    """Stride-1 stages of several sizes build, register and run their blocks as the lesson describes."""
    c = channels
    for cin, cout, num_blocks in [(c, 2 * c, 3), (c, c, 1), (2 * c, c, 2)]:
        _expect_blocks_of(make_stage, device, cin, cout, num_blocks)


def _expect_blocks_of(make_stage: Factory, device: torch.device, cin: int, cout: int, num_blocks: int) -> None:
    """One stride-1 stage: num_blocks blocks, cin -> cout then cout -> cout, registered, run once each in order."""
    stage, built, call = _build_stage(make_stage, device, cin, cout, num_blocks, 1)
    expected = [(cin, cout, 1)] + [(cout, cout, 1)] * (num_blocks - 1)
    asked = [block.built_with for block in built]
    if len(asked) != num_blocks:
        raise PropertyFailed(f"{call} built {len(asked)} blocks: call block(...) once for each of the "
                             "num_blocks blocks (repeating one block object would share its weights)")
    if asked != expected:
        raise PropertyFailed(f"{call} built {_format(asked)}, expected {_format(expected)}: the first "
                             "block changes the channels, every later block maps out_channels to "
                             "out_channels")
    _expect_registered(stage, sum(probe_block_params(*args) for args in expected), call)
    inputs = random_tensor(device, 2, cin, 8, 8)
    ran = [entry.module for entry in trace_forward(stage.eval(), inputs, (ProbeBlock,))]
    if len(ran) != num_blocks or any(a is not b for a, b in zip(ran, built, strict=False)):
        raise PropertyFailed(f"{call} must run each of its blocks once, in the order they were built")
    _expect_shape(_run(stage, inputs, call), (2, cout, 8, 8), call, "the stage must end with out_channels")


@check_make_stage.property("stride", "only the first block takes the stride")
def _expect_stage_stride(make_stage: Factory, device: torch.device, channels: int) -> None:
    """In stride-2 stages only the first block is asked for stride 2, and the map is halved once."""
    c = channels
    for cin, cout, num_blocks in [(c, 2 * c, 3), (c, c, 2), (c, 2 * c, 1)]:
        stage, built, call = _build_stage(make_stage, device, cin, cout, num_blocks, 2)
        asked = [block.built_with for block in built]
        strides = [args[2] for args in asked]
        if strides and strides[0] == 2 and any(s != 1 for s in strides[1:]):
            raise PropertyFailed(f"{call} built {_format(asked)}: only the first block takes the stride; every "
                                 "later block uses stride 1, or the stage shrinks the map again at each block")
        if strides and strides[0] != 2:
            raise PropertyFailed(f"{call} built {_format(asked)}: the first block must take the stride "
                                 "(it downsamples while it changes the channels)")
        output = _run(stage.eval(), random_tensor(device, 2, cin, 8, 8), call)
        _expect_shape(output, (2, cout, 4, 4), call, "a stride-2 stage halves the height and width once")


@check_make_stage.property("device", "runs on the device and passes the gradient to its input")
def _expect_stage_on_device(make_stage: Factory, device: torch.device, channels: int) -> None:
    """A stage's parameters and output live on the course device, and the loss gradient reaches the input."""
    c = channels
    stage, _, _ = _build_stage(make_stage, device, c, 2 * c, 2, 2)
    call = f"{name_of(make_stage, 'make_stage')}(block, {c}, {2 * c}, 2, 2)"
    expect_device_and_gradient(stage, random_tensor(device, 2, c, 8, 8), device, call, _run)


# ---------------------------------------------------------------- StageWithShortcut

check_stage_shortcut = Check("StageWithShortcut", "Check a learner's StageWithShortcut(stage, in_channels, "
                             "out_channels, stride) (relu(stage(x) + shortcut(x))) and print one PASS/FAIL line per "
                             "property.", channels=8)


def _wrap(factory: Factory, device: torch.device, cin: int, cout: int,
          stride: int) -> tuple[nn.Module, nn.Module, str]:
    """A probe stage, the learner's module around it (eval mode, on the device) and how it was called."""
    stage = _probe_stage(cin, cout, stride, device)
    call = f"{name_of(factory, 'StageWithShortcut')}(stage, {cin}, {cout}, stride={stride})"
    wrapped = build(factory, stage, cin, cout, stride, device=device, call=call).eval()
    return stage, wrapped, call


@check_stage_shortcut.property("identity", "relu(stage(x) + x) when the shape does not change, no extra parameters")
def _expect_identity_shortcut(factory: Factory, device: torch.device, channels: int) -> None:
    """With stride 1 and matching channels: the stage's parameters only, and relu(stage(x) + x), relu(x) at zero."""
    stage, wrapped, call = _wrap(factory, device, channels, channels, 1)
    extra = count_parameters(wrapped) - count_parameters(stage)
    if extra < 0:
        raise PropertyFailed(f"{call} does not hold the stage's parameters: store the stage as an attribute "
                             "(self.stage = stage) so that it is registered")
    if extra > 0:
        raise PropertyFailed(f"{call} adds {extra:,} parameters although the stage keeps the shape: the "
                             "shortcut must be the identity when stride is 1 and the channels match")
    inputs = random_tensor(device, 4, channels, 8, 8)
    with torch.no_grad():
        branch = stage.eval()(inputs)
        output = _run(wrapped, inputs, call)
    if not torch.allclose(output, F.relu(branch + inputs), atol=1e-5):
        raise PropertyFailed(_identity_mistake(output, branch, inputs, call))
    zero_parameters(stage)
    with torch.no_grad():
        zero_output = _run(wrapped, inputs, call)
    if not torch.allclose(zero_output, F.relu(inputs), atol=1e-6):
        raise PropertyFailed(f"with the stage's weights all zero, {call} should return relu(x) exactly")


def _identity_mistake(output: Tensor, branch: Tensor, inputs: Tensor, call: str) -> str:
    """What an identity-shortcut output that is not relu(stage(x) + x) got wrong, as the learner reads it."""
    if torch.allclose(output, branch + inputs, atol=1e-5):
        return f"{call} returned stage(x) + x: apply ReLU after the addition, as the blocks do"
    if torch.allclose(output, F.relu(branch), atol=1e-5) or torch.allclose(output, branch, atol=1e-5):
        return f"{call} returned the stage's output alone: add the input x (the shortcut) before the ReLU"
    if torch.allclose(output, F.relu(inputs), atol=1e-5):
        return f"{call} returned relu(x): run the stage and add its output to x"
    return f"{call} should return relu(stage(x) + x) when the shape does not change, and it returned something else"


@check_stage_shortcut.property("projection", "a 1x1 conv + BN shortcut exactly when stride or channels change")
def _expect_projection_shortcut(factory: Factory, device: torch.device, channels: int) -> None:
    """When the channels, the stride or both change, the shortcut is a 1x1 conv + BN whose output is added."""
    c = channels
    for cin, cout, stride in [(c, 2 * c, 1), (c, c, 2), (c, 2 * c, 2)]:
        _expect_projection_of(factory, device, cin, cout, stride)


def _expect_projection_of(factory: Factory, device: torch.device, cin: int, cout: int, stride: int) -> None:
    """One shape-changing stage: the stage's output shape, a 1x1 conv + BN's parameters, the projection added."""
    stage, wrapped, call = _wrap(factory, device, cin, cout, stride)
    inputs = random_tensor(device, 4, cin, 8, 8)
    with torch.no_grad():
        output = _run(wrapped, inputs, call)
    _expect_shape(output, (4, cout, 8 // stride, 8 // stride), call, "the output has the stage's shape")
    extra = count_parameters(wrapped) - count_parameters(stage)
    expected = projection_params(cin, cout, stride)
    if extra != expected:
        hints = {
            0: "there is no projection: use a 1x1 conv (that stride, bias=False) + BatchNorm",
            cin * cout: "the projection needs a BatchNorm after its 1x1 conv",
            expected + cout: "the projection's conv has a bias: pass bias=False",
            9 * cin * cout + 2 * cout: "the projection is a 1x1 convolution, not 3x3",
        }
        hint = hints.get(extra, "the projection is a 1x1 conv (bias=False) + BatchNorm, nothing else")
        raise PropertyFailed(f"{call} adds {extra:,} parameters to the stage's, expected {expected:,}: {hint}")
    zero_parameters(stage)
    with torch.no_grad():
        if torch.count_nonzero(_run(wrapped, inputs, call)) == 0:
            raise PropertyFailed(f"with the stage at zero, {call} returned all zeros: the projected input "
                                 "must be added to the stage's output")


@check_stage_shortcut.property("device", "runs on the device and passes the gradient to its input")
def _expect_shortcut_on_device(factory: Factory, device: torch.device, channels: int) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    _, wrapped, call = _wrap(factory, device, channels, channels, 1)
    expect_device_and_gradient(wrapped.train(), random_tensor(device, 4, channels, 8, 8), device, call, _run)


# ---------------------------------------------------------------- GAPHead

check_gap_head = Check("GAPHead", "Check a learner's GAPHead(in_channels, num_classes) (average over positions, then "
                       "one Linear layer) and print one PASS/FAIL line per property.", channels=16, num_classes=10)


def _build_head(factory: Factory, device: torch.device, channels: int, num_classes: int) -> tuple[nn.Module, str]:
    """The learner's head in eval mode on the device, and how it was called."""
    call = f"{name_of(factory, 'GAPHead')}({channels}, {num_classes})"
    return build(factory, channels, num_classes, device=device, call=call).eval(), call


@check_gap_head.property("pools", "any map size gives (N, classes), by averaging over all positions")
def _expect_pooling(factory: Factory, device: torch.device, channels: int, num_classes: int) -> None:
    """Maps of several sizes give (N, classes) logits that ignore where a feature is and equal the mean's."""
    head, call = _build_head(factory, device, channels, num_classes)
    for height, width in [(7, 7), (4, 4), (5, 3), (1, 1)]:
        features = random_tensor(device, 4, channels, height, width, seed=height * 10 + width)
        with torch.no_grad():
            _expect_pooled(head, features, num_classes, call)


def _expect_pooled(head: nn.Module, features: Tensor, num_classes: int, call: str) -> None:
    """On one feature map: one logit per class, unchanged by shuffling the positions or by averaging over them."""
    _, channels, height, width = features.shape
    output = _run(head, features, call)
    _expect_shape(output, (4, num_classes), f"{call} on a {channels}x{height}x{width} map", "one logit per class, "
                  "whatever the height and width of the feature map")
    order = torch.randperm(height * width, generator=torch.Generator().manual_seed(0)).to(features.device)
    shuffled = features.flatten(2)[:, :, order].view_as(features)
    if not torch.allclose(_run(head, shuffled, call), output, atol=1e-5):
        raise PropertyFailed(f"{call}'s output changes when the positions of a {height}x{width} map are "
                             "shuffled: pool over all positions (nn.AdaptiveAvgPool2d(1)) before the "
                             "Linear layer, so where a feature appears does not matter")
    averaged = features.mean(dim=(2, 3), keepdim=True)
    if not torch.allclose(_run(head, averaged, call), output, atol=1e-5):
        raise PropertyFailed(f"{call} does not give the same logits for a map and for its per-channel "
                             "mean: pool with the average (nn.AdaptiveAvgPool2d(1)), not the maximum or "
                             "the sum")


@check_gap_head.property("linear", "one Linear layer (in_channels x classes + classes parameters), logits, on the "
                         "device")
def _expect_linear_logits(factory: Factory, device: torch.device, channels: int, num_classes: int) -> None:
    """The head holds one Linear layer's parameters, returns logits (not probabilities) and runs on the device."""
    c, k = channels, num_classes
    head, call = _build_head(factory, device, c, k)
    got, expected = count_parameters(head), gap_head_params(c, k)
    if got != expected:
        hint = ("the Linear layer needs its bias" if got == expected - k else
                "the head is one nn.Linear(in_channels, num_classes) after the pooling; pooling has no parameters")
        raise PropertyFailed(f"{call} has {got:,} parameters, expected {c} x {k} + {k} = {expected:,}: {hint}")
    features = random_tensor(device, 4, c, 1, 1)
    with torch.no_grad():
        output = _run(head, features, call)
    if (output >= 0).all() and torch.allclose(output.sum(dim=1), torch.ones(4, device=device), atol=1e-4):
        raise PropertyFailed(f"{call} returns probabilities: return the logits (no softmax); "
                             "nn.CrossEntropyLoss applies log-softmax itself")
    expect_device_and_gradient(head, features, device, call, _run)


# ---------------------------------------------------------------- ResNet

class _ReachedBlock(Exception):
    """Raised by a hook to stop a forward pass at the first block: what came before it is the stem."""

    def __init__(self, inputs: Tensor) -> None:
        super().__init__("reached the first block")
        self.inputs = inputs


def _run_stem(model: nn.Module, inputs: Tensor, call: str) -> tuple[list[Call], Tensor]:
    """Run `model` until its first ProbeBlock; return the conv/BN/pool calls before it and that block's input."""
    calls: list[Call] = []

    def record(module: nn.Module, args: tuple, output: Tensor) -> None:
        calls.append(Call(module, tuple(args[0].shape), tuple(output.shape), float(args[0].min())))

    def stop(module: nn.Module, args: tuple) -> None:
        raise _ReachedBlock(args[0])

    layers = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
    learn_layers(model, inputs)
    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, layers)]
    handles += [m.register_forward_pre_hook(stop) for m in model.modules() if isinstance(m, ProbeBlock)]
    try:
        with torch.no_grad():
            _run(model, inputs, call)
    except _ReachedBlock as reached:
        return calls, reached.inputs
    finally:
        for handle in handles:
            handle.remove()
    raise PropertyFailed(f"{call} never ran the block it was given: build the stages by calling `block`")


check_resnet = Check("ResNet", "Check a learner's ResNet(block, layers, num_classes, in_channels, small_input[, "
                     "widths]) (built around a probe block) and print one PASS/FAIL line per property.",
                     layers=(2, 2, 2, 2), widths=None, num_classes=10)


def _stage_widths(widths: Sequence[int] | None) -> tuple[int, ...]:
    """The widths of the stages the check asks for: `widths`, or ImageNet's when it names none."""
    return tuple(widths) if widths is not None else IMAGENET_WIDTHS


def _build_resnet(factory: Factory, device: torch.device, layers: Sequence[int], widths: Sequence[int] | None,
                  num_classes: int, in_channels: int = 3,
                  small_input: bool = False) -> tuple[nn.Module, BlockRecorder, str]:
    """The learner's ResNet around a recording probe block, in eval mode on the device, and how it was called."""
    recorder = BlockRecorder()
    options: dict[str, object] = {"num_classes": num_classes, "in_channels": in_channels, "small_input": small_input}
    if widths is not None:
        options["widths"] = tuple(widths)
    width_text = "" if widths is None else f", widths={tuple(widths)}"
    call = (f"{name_of(factory, 'ResNet')}(block, {list(layers)}, num_classes={num_classes}, "
            f"in_channels={in_channels}{', small_input=True' if small_input else ''}{width_text})")
    model = build(factory, recorder, list(layers), device=device, call=call, lent=(ProbeBlock,), **options)
    return model.eval(), recorder, call


def _smallest_1x1_input(layers: Sequence[int], small_input: bool) -> int:
    """An input size whose last feature map is 1x1, so that even a head without pooling runs."""
    return 2 ** (len(layers) - 1) * (1 if small_input else 4)


def _convs(calls: list[Call]) -> list[Call]:
    """The convolutions among the stem's calls, in the order they ran."""
    return [entry for entry in calls if isinstance(entry.module, nn.Conv2d)]


@check_resnet.property("stem", "ImageNet stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (the first block sees 1/4 size)")
def _expect_imagenet_stem(factory: Factory, device: torch.device, layers: Sequence[int],
                          widths: Sequence[int] | None, num_classes: int) -> None:
    """The stem starts with a 7x7 conv and hands the first block a non-negative, widths[0]-channel, 1/4-size map."""
    model, _, call = _build_resnet(factory, device, layers, widths, num_classes)
    size = _smallest_1x1_input(layers, small_input=False)  # the whole model runs on it, whatever its head does
    calls, first_input = _run_stem(model, random_tensor(device, 2, 3, size, size), call)
    convs = _convs(calls)
    if not convs or convs[0].module.kernel_size != (7, 7):
        raise PropertyFailed(f"{call}: the ImageNet stem starts with a 7x7 convolution (stride 2, padding 3)")
    expected = (2, _stage_widths(widths)[0], size // 4, size // 4)
    if tuple(first_input.shape) == expected and float(first_input.min()) >= 0:
        return
    raise PropertyFailed(f"for a {size}x{size} image, {call} gives the first block a {tuple(first_input.shape)} "
                         f"input, expected {expected}: {_stem_hint(calls, first_input, expected[1], size)}")


def _stem_hint(calls: list[Call], first_input: Tensor, width: int, size: int) -> str:
    """What to change in an ImageNet stem that does not hand the first block a (N, width, size/4, size/4) map."""
    if first_input.shape[1] != width:
        return f"the stem must output widths[0] = {width} channels"
    if first_input.shape[-1] == size // 4:
        return "the stem must end with a ReLU (after its BatchNorm), so the first block gets non-negative input"
    if _convs(calls)[0].output_shape[-1] == size:
        return f"the 7x7 conv must have stride 2 (and padding 3): it halves {size} to {size // 2}"
    if not any(isinstance(entry.module, nn.MaxPool2d) for entry in calls):
        return "after conv-BN-ReLU the stem needs nn.MaxPool2d(3, stride=2, padding=1), the second halving"
    return "the stem divides the size by 4: 7x7 conv stride 2 padding 3, then 3x3 max-pool stride 2 padding 1"


@check_resnet.property("stages", "stage widths and depths; stride 1 into stage 1, stride 2 into each later stage")
def _expect_stages(factory: Factory, device: torch.device, layers: Sequence[int], widths: Sequence[int] | None,
                   num_classes: int) -> None:
    """The blocks are built as stage_plan says: layers[i] blocks of widths[i], stride 2 into every later stage."""
    _, recorder, call = _build_resnet(factory, device, layers, widths, num_classes)
    sizes = _stage_widths(widths)
    asked, plan = recorder.arguments(), stage_plan(list(layers), sizes)
    if len(asked) != len(plan):
        raise PropertyFailed(f"{call} built {len(asked)} blocks, expected sum({list(layers)}) = {len(plan)}: "
                             "stage i holds layers[i] blocks")
    first = 0
    for index, num_blocks in enumerate(layers):
        _expect_stage_start(asked[first], plan[first], index, sizes, call)
        outs = {args[1] for args in asked[first:first + num_blocks]}
        if outs != {sizes[index]}:
            raise PropertyFailed(f"{call}: the blocks of stage {index + 1} output {sorted(outs)} channels, "
                                 f"expected {sizes[index]}")
        first += num_blocks


def _expect_stage_start(entry: tuple[int, int, int], expected: tuple[int, int, int], index: int,
                        sizes: tuple[int, ...], call: str) -> None:
    """Stage `index + 1`'s first block was asked for the planned stride, then the planned channels."""
    if entry[2] != expected[2]:
        hint = ("the first stage keeps the resolution (stride 1): the stem has already downsampled"
                if index == 0 else "every stage after the first starts with stride 2")
        raise PropertyFailed(f"{call}: stage {index + 1} starts with block{entry}, expected block{expected}: {hint}")
    if entry[:2] != expected[:2]:
        raise PropertyFailed(f"{call}: stage {index + 1} starts with block{entry}, expected block{expected}: "
                             f"stage widths are {list(sizes)}, and each stage starts from the previous "
                             "stage's width (the first from the stem's)")


@check_resnet.property("head", "returns (N, num_classes) logits")
def _expect_logits(factory: Factory, device: torch.device, layers: Sequence[int], widths: Sequence[int] | None,
                   num_classes: int) -> None:
    """For num_classes and for 7 classes, an image gives one logit per class."""
    size = _smallest_1x1_input(layers, small_input=False)
    for classes in sorted({num_classes, 7}):
        model, _, call = _build_resnet(factory, device, layers, widths, classes)
        with torch.no_grad():
            output = _run(model, random_tensor(device, 2, 3, size, size), call)
        _expect_shape(output, (2, classes), f"{call} on a {size}x{size} image",
                      "end with the GAP head: one logit per class")


@check_resnet.property("params", "parameter count = stem + blocks + GAP head")
def _expect_resnet_params(factory: Factory, device: torch.device, layers: Sequence[int],
                          widths: Sequence[int] | None, num_classes: int) -> None:
    """The model holds exactly the parameters of an ImageNet stem, its probe blocks and a GAP head."""
    model, _, call = _build_resnet(factory, device, layers, widths, num_classes)
    sizes = _stage_widths(widths)
    got = count_parameters(model)
    expected = resnet_params(probe_block_params, list(layers), num_classes, 3, False, sizes)
    hints = {
        sizes[0]: "the stem's conv has a bias: pass bias=False (its BatchNorm shifts)",
        -2 * sizes[0]: "the stem needs a BatchNorm after its conv",
        -40 * 3 * sizes[0]: "the ImageNet stem conv is 7x7, not 3x3",
        -num_classes: "the classifier needs its bias",
    }
    if got != expected:
        hint = hints.get(got - expected, "stem (7x7 conv without bias + BN) + stages + GAP + one Linear layer")
        raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected:,}: {hint}")


@check_resnet.property("small input", "small_input=True: 3x3/1 stem and no max-pool, for 28x28 images")
def _expect_small_input_stem(factory: Factory, device: torch.device, layers: Sequence[int],
                             widths: Sequence[int] | None, num_classes: int) -> None:
    """With small_input=True and one input channel: a full-size first block input, a 3x3 stem's parameters, logits."""
    model, _, call = _build_resnet(factory, device, layers, widths, num_classes, in_channels=1, small_input=True)
    sizes = _stage_widths(widths)
    size = _smallest_1x1_input(layers, small_input=True)  # the whole model runs on it, whatever its head does
    calls, first_input = _run_stem(model, random_tensor(device, 2, 1, size, size), call)
    convs = _convs(calls)
    expected = (2, sizes[0], size, size)
    if tuple(first_input.shape) != expected or not convs or convs[0].module.kernel_size != (3, 3):
        raise PropertyFailed(f"for a {size}x{size} image, {call} gives the first block a "
                             f"{tuple(first_input.shape)} input, expected {expected}: with small_input=True the "
                             "stem is a 3x3 conv with stride 1 and padding 1 (+ BN + ReLU) and no max-pool; "
                             "28x28 images are too small to shrink 4x at once")
    got = count_parameters(model)
    expected_params = resnet_params(probe_block_params, list(layers), num_classes, 1, True, sizes)
    if got != expected_params:
        raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected_params:,}: a 3x3 stem conv "
                             "without bias, its BatchNorm, the stages and the GAP head")
    with torch.no_grad():
        output = _run(model, random_tensor(device, 2, 1, size, size), call)
    _expect_shape(output, (2, num_classes), call, "one logit per class")


@check_resnet.property("device", "runs on the device and passes the gradient to its input")
def _expect_resnet_on_device(factory: Factory, device: torch.device, layers: Sequence[int],
                             widths: Sequence[int] | None, num_classes: int) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    model, _, call = _build_resnet(factory, device, layers, widths, num_classes)
    size = _smallest_1x1_input(layers, small_input=False)
    expect_device_and_gradient(model.train(), random_tensor(device, 2, 3, size, size), device, call, _run)
