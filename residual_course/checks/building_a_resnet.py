"""Checks for lesson 05's pieces of a ResNet: make_stage, a stage-level shortcut, the GAP head and ResNet itself.

Every check that needs blocks hands the learner's code a `ProbeBlock` of its own, never the learner's BasicBlock:
a mistake in that block (lesson 04) then costs no points here, and the probe remembers what it was asked to be.
The checks of ResNet stop the forward pass at the first block, or feed inputs that end as 1x1 feature maps, so that
a mistake in make_stage or in the GAP head does not fail them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.report import Property, PropertyFailed, run_properties
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

    Not residual on purpose (the checks of this lesson must not depend on lesson 04's block). It remembers the
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

def make_stage_properties(make_stage: Factory, channels: int = 8) -> list[Property]:
    """Properties of make_stage(block, in_channels, out_channels, num_blocks, stride) -> a stage of blocks."""
    c = channels
    name = name_of(make_stage, "make_stage")

    def build_stage(device: torch.device, cin: int, cout: int, num_blocks: int, stride: int) -> tuple[nn.Module, list]:
        """Call make_stage with a recording block factory and return the stage and what it asked for."""
        recorder = BlockRecorder()
        call = f"{name}(block, {cin}, {cout}, num_blocks={num_blocks}, stride={stride})"
        stage = build(make_stage, recorder, cin, cout, num_blocks, stride, device=device, call=call,
                      lent=(ProbeBlock,))
        return stage, recorder.built

    def blocks(device: torch.device) -> None:
        for cin, cout, num_blocks in [(c, 2 * c, 3), (c, c, 1), (2 * c, c, 2)]:
            stage, built = build_stage(device, cin, cout, num_blocks, 1)
            call = f"{name}(block, {cin}, {cout}, num_blocks={num_blocks}, stride=1)"
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

    def stride(device: torch.device) -> None:
        for cin, cout, num_blocks in [(c, 2 * c, 3), (c, c, 2), (c, 2 * c, 1)]:
            stage, built = build_stage(device, cin, cout, num_blocks, 2)
            call = f"{name}(block, {cin}, {cout}, num_blocks={num_blocks}, stride=2)"
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

    def device_property(device: torch.device) -> None:
        stage, _ = build_stage(device, c, 2 * c, 2, 2)
        call = f"{name}(block, {c}, {2 * c}, 2, 2)"
        expect_device_and_gradient(stage, random_tensor(device, 2, c, 8, 8), device, call, _run)

    return [
        Property("blocks", "num_blocks blocks: the first changes the channels, the rest keep them", blocks),
        Property("stride", "only the first block takes the stride", stride),
        Property("device", "runs on the device and passes the gradient to its input", device_property),
    ]


# ---------------------------------------------------------------- StageWithShortcut

def stage_shortcut_properties(factory: Factory, channels: int = 8) -> list[Property]:
    """Properties of StageWithShortcut(stage, in_channels, out_channels, stride): relu(stage(x) + shortcut(x))."""
    c = channels
    name = name_of(factory, "StageWithShortcut")

    def wrap(device: torch.device, cin: int, cout: int, stride: int) -> tuple[nn.Module, nn.Module, str]:
        """A probe stage, the learner's module around it (eval mode, on the device) and how it was called."""
        stage = _probe_stage(cin, cout, stride, device)
        call = f"{name}(stage, {cin}, {cout}, stride={stride})"
        wrapped = build(factory, stage, cin, cout, stride, device=device, call=call).eval()
        return stage, wrapped, call

    def identity(device: torch.device) -> None:
        stage, wrapped, call = wrap(device, c, c, 1)
        extra = count_parameters(wrapped) - count_parameters(stage)
        if extra < 0:
            raise PropertyFailed(f"{call} does not hold the stage's parameters: store the stage as an attribute "
                                 "(self.stage = stage) so that it is registered")
        if extra > 0:
            raise PropertyFailed(f"{call} adds {extra:,} parameters although the stage keeps the shape: the "
                                 "shortcut must be the identity when stride is 1 and the channels match")
        inputs = random_tensor(device, 4, c, 8, 8)
        with torch.no_grad():
            branch = stage.eval()(inputs)
            output = _run(wrapped, inputs, call)
        if torch.allclose(output, F.relu(branch + inputs), atol=1e-5):
            with torch.no_grad():
                for parameter in stage.parameters():
                    parameter.zero_()
                zero_output = _run(wrapped, inputs, call)
            if not torch.allclose(zero_output, F.relu(inputs), atol=1e-6):
                raise PropertyFailed(f"with the stage's weights all zero, {call} should return relu(x) exactly")
            return
        if torch.allclose(output, branch + inputs, atol=1e-5):
            raise PropertyFailed(f"{call} returned stage(x) + x: apply ReLU after the addition, as the blocks do")
        if torch.allclose(output, F.relu(branch), atol=1e-5) or torch.allclose(output, branch, atol=1e-5):
            raise PropertyFailed(f"{call} returned the stage's output alone: add the input x (the shortcut) "
                                 "before the ReLU")
        if torch.allclose(output, F.relu(inputs), atol=1e-5):
            raise PropertyFailed(f"{call} returned relu(x): run the stage and add its output to x")
        raise PropertyFailed(f"{call} should return relu(stage(x) + x) when the shape does not change, "
                             "and it returned something else")

    def projection(device: torch.device) -> None:
        for cin, cout, stride in [(c, 2 * c, 1), (c, c, 2), (c, 2 * c, 2)]:
            stage, wrapped, call = wrap(device, cin, cout, stride)
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
            with torch.no_grad():
                for parameter in stage.parameters():
                    parameter.zero_()
                if torch.count_nonzero(_run(wrapped, inputs, call)) == 0:
                    raise PropertyFailed(f"with the stage at zero, {call} returned all zeros: the projected input "
                                         "must be added to the stage's output")

    def device_property(device: torch.device) -> None:
        _, wrapped, call = wrap(device, c, c, 1)
        expect_device_and_gradient(wrapped.train(), random_tensor(device, 4, c, 8, 8), device, call, _run)

    return [
        Property("identity", "relu(stage(x) + x) when the shape does not change, no extra parameters", identity),
        Property("projection", "a 1x1 conv + BN shortcut exactly when stride or channels change", projection),
        Property("device", "runs on the device and passes the gradient to its input", device_property),
    ]


# ---------------------------------------------------------------- GAPHead

def gap_head_properties(factory: Factory, channels: int = 16, num_classes: int = 10) -> list[Property]:
    """Properties of GAPHead(in_channels, num_classes): average over positions, then one Linear layer."""
    c, k = channels, num_classes
    call = f"{name_of(factory, 'GAPHead')}({c}, {k})"

    def build_head(device: torch.device) -> nn.Module:
        return build(factory, c, k, device=device, call=call).eval()

    def pools(device: torch.device) -> None:
        head = build_head(device)
        for height, width in [(7, 7), (4, 4), (5, 3), (1, 1)]:
            features = random_tensor(device, 4, c, height, width, seed=height * 10 + width)
            with torch.no_grad():
                output = _run(head, features, call)
                _expect_shape(output, (4, k), f"{call} on a {c}x{height}x{width} map", "one logit per class, "
                              "whatever the height and width of the feature map")
                order = torch.randperm(height * width, generator=torch.Generator().manual_seed(0)).to(device)
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

    def linear(device: torch.device) -> None:
        head = build_head(device)
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

    return [
        Property("pools", "any map size gives (N, classes), by averaging over all positions", pools),
        Property("linear", "one Linear layer (in_channels x classes + classes parameters), logits, on the device",
                 linear),
    ]


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


def resnet_properties(factory: Factory, layers: Sequence[int] = (2, 2, 2, 2), widths: Sequence[int] | None = None,
                      num_classes: int = 10) -> list[Property]:
    """Properties of ResNet(block, layers, num_classes, in_channels, small_input[, widths])."""
    layers = list(layers)
    sizes = tuple(widths) if widths is not None else IMAGENET_WIDTHS
    name = name_of(factory, "ResNet")
    width_text = "" if widths is None else f", widths={tuple(widths)}"

    def build_resnet(device: torch.device, in_channels: int = 3, small_input: bool = False,
                     classes: int = num_classes) -> tuple[nn.Module, BlockRecorder, str]:
        """The learner's ResNet around a recording probe block, in eval mode on the device."""
        recorder = BlockRecorder()
        options: dict[str, object] = {"num_classes": classes, "in_channels": in_channels, "small_input": small_input}
        if widths is not None:
            options["widths"] = tuple(widths)
        call = (f"{name}(block, {layers}, num_classes={classes}, in_channels={in_channels}"
                f"{', small_input=True' if small_input else ''}{width_text})")
        model = build(factory, recorder, layers, device=device, call=call, lent=(ProbeBlock,), **options)
        return model.eval(), recorder, call

    def smallest_1x1_input(small_input: bool) -> int:
        """An input size whose last feature map is 1x1, so that even a head without pooling runs."""
        return 2 ** (len(layers) - 1) * (1 if small_input else 4)

    def stem(device: torch.device) -> None:
        model, _, call = build_resnet(device)
        size = smallest_1x1_input(small_input=False)  # the whole model runs on it, whatever its head does
        calls, first_input = _run_stem(model, random_tensor(device, 2, 3, size, size), call)
        convs = [entry for entry in calls if isinstance(entry.module, nn.Conv2d)]
        if not convs or convs[0].module.kernel_size != (7, 7):
            raise PropertyFailed(f"{call}: the ImageNet stem starts with a 7x7 convolution (stride 2, padding 3)")
        expected = (2, sizes[0], size // 4, size // 4)
        if tuple(first_input.shape) == expected and float(first_input.min()) >= 0:
            return
        pooled = any(isinstance(entry.module, nn.MaxPool2d) for entry in calls)
        if first_input.shape[1] != sizes[0]:
            hint = f"the stem must output widths[0] = {sizes[0]} channels"
        elif first_input.shape[-1] == size // 4:
            hint = "the stem must end with a ReLU (after its BatchNorm), so the first block gets non-negative input"
        elif convs[0].output_shape[-1] == size:
            hint = f"the 7x7 conv must have stride 2 (and padding 3): it halves {size} to {size // 2}"
        elif not pooled:
            hint = "after conv-BN-ReLU the stem needs nn.MaxPool2d(3, stride=2, padding=1), the second halving"
        else:
            hint = "the stem divides the size by 4: 7x7 conv stride 2 padding 3, then 3x3 max-pool stride 2 padding 1"
        raise PropertyFailed(f"for a {size}x{size} image, {call} gives the first block a {tuple(first_input.shape)} "
                             f"input, expected {expected}: {hint}")

    def stages(device: torch.device) -> None:
        _, recorder, call = build_resnet(device)
        asked, plan = recorder.arguments(), stage_plan(layers, sizes)
        if len(asked) != len(plan):
            raise PropertyFailed(f"{call} built {len(asked)} blocks, expected sum({layers}) = {len(plan)}: "
                                 "stage i holds layers[i] blocks")
        first = 0
        for index, num_blocks in enumerate(layers):
            entry, expected = asked[first], plan[first]
            if entry[2] != expected[2]:
                hint = ("the first stage keeps the resolution (stride 1): the stem has already downsampled"
                        if index == 0 else "every stage after the first starts with stride 2")
                raise PropertyFailed(f"{call}: stage {index + 1} starts with block{entry}, expected "
                                     f"block{expected}: {hint}")
            if entry[:2] != expected[:2]:
                raise PropertyFailed(f"{call}: stage {index + 1} starts with block{entry}, expected block{expected}: "
                                     f"stage widths are {list(sizes)}, and each stage starts from the previous "
                                     "stage's width (the first from the stem's)")
            outs = {args[1] for args in asked[first:first + num_blocks]}
            if outs != {sizes[index]}:
                raise PropertyFailed(f"{call}: the blocks of stage {index + 1} output {sorted(outs)} channels, "
                                     f"expected {sizes[index]}")
            first += num_blocks

    def head(device: torch.device) -> None:
        size = smallest_1x1_input(small_input=False)
        for classes in sorted({num_classes, 7}):
            model, _, call = build_resnet(device, classes=classes)
            with torch.no_grad():
                output = _run(model, random_tensor(device, 2, 3, size, size), call)
            _expect_shape(output, (2, classes), f"{call} on a {size}x{size} image",
                          "end with the GAP head: one logit per class")

    def params(device: torch.device) -> None:
        model, _, call = build_resnet(device)
        got = count_parameters(model)
        expected = resnet_params(probe_block_params, layers, num_classes, 3, False, sizes)
        hints = {
            sizes[0]: "the stem's conv has a bias: pass bias=False (its BatchNorm shifts)",
            -2 * sizes[0]: "the stem needs a BatchNorm after its conv",
            -40 * 3 * sizes[0]: "the ImageNet stem conv is 7x7, not 3x3",
            -num_classes: "the classifier needs its bias",
        }
        if got != expected:
            hint = hints.get(got - expected, "stem (7x7 conv without bias + BN) + stages + GAP + one Linear layer")
            raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected:,}: {hint}")

    def small_input(device: torch.device) -> None:
        model, _, call = build_resnet(device, in_channels=1, small_input=True)
        size = smallest_1x1_input(small_input=True)  # the whole model runs on it, whatever its head does
        calls, first_input = _run_stem(model, random_tensor(device, 2, 1, size, size), call)
        convs = [entry for entry in calls if isinstance(entry.module, nn.Conv2d)]
        expected = (2, sizes[0], size, size)
        if tuple(first_input.shape) != expected or not convs or convs[0].module.kernel_size != (3, 3):
            raise PropertyFailed(f"for a {size}x{size} image, {call} gives the first block a "
                                 f"{tuple(first_input.shape)} input, expected {expected}: with small_input=True the "
                                 "stem is a 3x3 conv with stride 1 and padding 1 (+ BN + ReLU) and no max-pool; "
                                 "28x28 images are too small to shrink 4x at once")
        got = count_parameters(model)
        expected_params = resnet_params(probe_block_params, layers, num_classes, 1, True, sizes)
        if got != expected_params:
            raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected_params:,}: a 3x3 stem conv "
                                 "without bias, its BatchNorm, the stages and the GAP head")
        with torch.no_grad():
            output = _run(model, random_tensor(device, 2, 1, size, size), call)
        _expect_shape(output, (2, num_classes), call, "one logit per class")

    def device_property(device: torch.device) -> None:
        model, _, call = build_resnet(device)
        size = smallest_1x1_input(small_input=False)
        expect_device_and_gradient(model.train(), random_tensor(device, 2, 3, size, size), device, call, _run)

    return [
        Property("stem", "ImageNet stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (the first block sees 1/4 size)", stem),
        Property("stages", "stage widths and depths; stride 1 into stage 1, stride 2 into each later stage", stages),
        Property("head", "returns (N, num_classes) logits", head),
        Property("params", "parameter count = stem + blocks + GAP head", params),
        Property("small input", "small_input=True: 3x3/1 stem and no max-pool, for 28x28 images", small_input),
        Property("device", "runs on the device and passes the gradient to its input", device_property),
    ]


# ---------------------------------------------------------------- the learner-facing checks

def check_make_stage(make_stage: Factory, only: str | list[str] | None = None, channels: int = 8) -> None:
    """Check a learner's make_stage and print one PASS/FAIL line per property."""
    run_properties(name_of(make_stage, "make_stage"), make_stage_properties(make_stage, channels), only)


def check_stage_shortcut(factory: Factory, only: str | list[str] | None = None, channels: int = 8) -> None:
    """Check a learner's StageWithShortcut and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "StageWithShortcut"), stage_shortcut_properties(factory, channels), only)


def check_gap_head(factory: Factory, only: str | list[str] | None = None, channels: int = 16,
                   num_classes: int = 10) -> None:
    """Check a learner's GAPHead and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "GAPHead"), gap_head_properties(factory, channels, num_classes), only)


def check_resnet(factory: Factory, only: str | list[str] | None = None, layers: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] | None = None, num_classes: int = 10) -> None:
    """Check a learner's ResNet (built around a probe block) and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "ResNet"), resnet_properties(factory, layers, widths, num_classes), only)
