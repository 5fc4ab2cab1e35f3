"""Parameter and MAC counts in one place: the formulas the lessons derive, and the counts of a built model they
predict (the checks compare the two; the notebooks print both)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv

from residual_course.probes import forward_hooks

IMAGENET_WIDTHS = (64, 128, 256, 512)


# ---------------------------------------------------------------- counts of a built model

def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the number every comparison table in the course is normalised by."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """Multiply-accumulates of one image's forward pass through every Conv2d and Linear: compute, not only size."""
    total = 0

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        def count(module: nn.Module, args: tuple, output: Tensor) -> None:
            nonlocal total
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                total += output[0].numel() * per_output
            else:
                total += module.in_features * module.out_features

        return count

    was_training = model.training
    device = next(model.parameters()).device
    inputs = torch.zeros(input_shape, device=device)
    try:
        with forward_hooks(model, (nn.Conv2d, nn.Linear), make_hook, inputs), torch.no_grad():
            model.eval()
            model(inputs)
    finally:
        model.train(was_training)
    return total


# ---------------------------------------------------------------- lesson 00: an MLP

def mlp_params(in_features: int = 784, hidden_features: Sequence[int] = (256, 128), num_classes: int = 10) -> int:
    """One Linear layer (weights + biases) per consecutive pair of sizes: sum of (a + 1) * b."""
    sizes = [in_features, *hidden_features, num_classes]
    return sum((a + 1) * b for a, b in pairwise(sizes))


# ---------------------------------------------------------------- lesson 03: a residual MLP block

def residual_mlp_block_params(width: int, bias: bool = True) -> int:
    """Two width x width Linear layers (with or without biases) and two BatchNorm1d layers (scale and shift each)."""
    return 2 * width * width + (2 * width if bias else 0) + 2 * 2 * width


# ---------------------------------------------------------------- lesson 05: residual blocks

def basic_block_params(in_channels: int, out_channels: int, stride: int = 1) -> int:
    """Two bias-free 3x3 convs, two BatchNorms, plus a 1x1 conv + BN projection when the shape changes."""
    count = 9 * in_channels * out_channels + 9 * out_channels**2 + 2 * 2 * out_channels
    if stride != 1 or in_channels != out_channels:
        count += in_channels * out_channels + 2 * out_channels
    return count


def bottleneck_params(in_channels: int, mid_channels: int, stride: int = 1) -> int:
    """1x1 reduce, 3x3, 1x1 expand to 4*mid (bias-free, each with BN), plus a projection when needed."""
    out_channels = 4 * mid_channels
    count = in_channels * mid_channels + 9 * mid_channels**2 + mid_channels * out_channels
    count += 2 * (mid_channels + mid_channels + out_channels)
    if stride != 1 or in_channels != out_channels:
        count += in_channels * out_channels + 2 * out_channels
    return count


def preact_block_params(in_channels: int, out_channels: int, stride: int = 1) -> set[int]:
    """BN(in) and two bias-free 3x3 convs with BN(out) between; a 1x1 projection (with or without BN)."""
    count = 2 * in_channels + 9 * in_channels * out_channels + 2 * out_channels + 9 * out_channels**2
    if stride == 1 and in_channels == out_channels:
        return {count}
    projection = in_channels * out_channels
    return {count + projection, count + projection + 2 * out_channels}


def torchvision_basic_block_params(in_channels: int, out_channels: int, stride: int = 1) -> int:
    """Parameter count of torchvision's own BasicBlock, downsample built as its ResNet does."""
    downsample = _tv_downsample(in_channels, out_channels, stride)
    return count_parameters(tv.BasicBlock(in_channels, out_channels, stride, downsample))


def torchvision_bottleneck_params(in_channels: int, mid_channels: int, stride: int = 1) -> int:
    """Parameter count of torchvision's own Bottleneck, downsample built as its ResNet does."""
    downsample = _tv_downsample(in_channels, 4 * mid_channels, stride)
    return count_parameters(tv.Bottleneck(in_channels, mid_channels, stride, downsample))


def _tv_downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """torchvision's projection: 1x1 conv (stride, no bias) + BN, only when the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


# ---------------------------------------------------------------- lesson 06: a ResNet's parts and the whole

def gap_head_params(in_channels: int, num_classes: int) -> int:
    """Global average pooling has no parameters: only the Linear layer's weights and biases count."""
    return in_channels * num_classes + num_classes


def flatten_head_params(in_channels: int, height: int, width: int, num_classes: int) -> int:
    """Flatten + Linear: one weight per class for every channel at every position."""
    return in_channels * height * width * num_classes + num_classes


def stem_params(in_channels: int, width: int = 64, small_input: bool = False) -> int:
    """A bias-free 7x7 conv (3x3 for small inputs) and its BatchNorm; ReLU and max-pool have no parameters."""
    kernel = 3 if small_input else 7
    return kernel * kernel * in_channels * width + 2 * width


def projection_params(in_channels: int, out_channels: int, stride: int = 1) -> int:
    """A 1x1 bias-free conv + BatchNorm when the shape changes, nothing for an identity shortcut."""
    if stride == 1 and in_channels == out_channels:
        return 0
    return in_channels * out_channels + 2 * out_channels


def stage_plan(layers: Sequence[int], widths: Sequence[int] = IMAGENET_WIDTHS) -> list[tuple[int, int, int]]:
    """The (in_channels, out_channels, stride) of every block of a ResNet, in order, as torchvision builds them."""
    plan, channels = [], widths[0]
    for index, (width, num_blocks) in enumerate(zip(widths, layers, strict=True)):
        for position in range(num_blocks):
            stride = 2 if index > 0 and position == 0 else 1
            plan.append((channels, width, stride))
            channels = width
    return plan


def resnet_params(block_params: Callable[[int, int, int], int], layers: Sequence[int], num_classes: int = 1000,
                  in_channels: int = 3, small_input: bool = False, widths: Sequence[int] = IMAGENET_WIDTHS) -> int:
    """Stem + every block (counted by `block_params(in, out, stride)`) + the GAP head."""
    blocks = sum(block_params(*args) for args in stage_plan(layers, widths))
    return stem_params(in_channels, widths[0], small_input) + blocks + gap_head_params(widths[-1], num_classes)


# ---------------------------------------------------------------- lesson 08: ResNeXt and DenseNet

def resnext_block_params(in_channels: int, out_channels: int, cardinality: int, bottleneck_width: int,
                         stride: int = 1, groups: int | None = None) -> int:
    """1x1 to C*d, 3x3 grouped (9 * width**2 / groups weights), 1x1 to out, BN after each; projection when needed.

    `groups` defaults to the cardinality; other values give the counts of the usual mistakes.
    """
    width = cardinality * bottleneck_width
    groups = cardinality if groups is None else groups
    count = in_channels * width + 9 * width * width // groups + width * out_channels
    count += 2 * (width + width + out_channels)
    if stride != 1 or in_channels != out_channels:
        count += in_channels * out_channels + 2 * out_channels
    return count


def dense_layer_params(in_channels: int, growth_rate: int) -> int:
    """BN(in), 1x1 conv to 4k, BN(4k), 3x3 conv to k; bias-free convs (DenseNet-BC)."""
    bottleneck = 4 * growth_rate
    return 2 * in_channels + in_channels * bottleneck + 2 * bottleneck + 9 * bottleneck * growth_rate


def dense_block_params(num_layers: int, in_channels: int, growth_rate: int) -> int:
    """Layer i sees every channel so far: in_channels + i * growth_rate inputs."""
    return sum(dense_layer_params(in_channels + i * growth_rate, growth_rate) for i in range(num_layers))


def transition_params(in_channels: int, out_channels: int) -> int:
    """BN(in) and a bias-free 1x1 conv; pooling has no parameters."""
    return 2 * in_channels + in_channels * out_channels
