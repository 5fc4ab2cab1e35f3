"""Lesson 06's small ResNet for the benchmarks, from torchvision's BasicBlock: outside the package, not a solution."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, conv1x1


class SmallResNet(nn.Module):
    """Stem conv3x3-BN-ReLU, stages of torchvision BasicBlocks (width up, resolution down), GAP, linear."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64), layers: Sequence[int] = (1, 1, 1),
                 num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], widths[0]
        for index, (width, num_blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or channels != width:
                downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
            blocks = [BasicBlock(channels, width, stride, downsample)]
            blocks += [BasicBlock(width, width) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Images (N, C, 28, 28) to logits (N, num_classes)."""
        return self.head(self.stages(self.stem(x)))
