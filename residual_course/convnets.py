"""Small convolutional networks for 28x28 images, assembled from any block, so lessons compare blocks, not plumbing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from residual_course.formulas import stage_plan

BlockFactory = Callable[[int, int, int], nn.Module]  # (in_channels, out_channels, stride) -> block


class PlainBlock(nn.Module):
    """A residual block with its shortcut removed: conv3x3-BN-ReLU twice, the baseline of every comparison."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """No shortcut: the output is the branch alone."""
        return self.layers(x)


class Stem(nn.Sequential):
    """3x3 conv-BN-ReLU to the first width. The parts of ConvNet have classes of their own, so that the checks
    can tell the course's pieces from a network a learner wrote."""


class Stage(nn.Sequential):
    """The blocks of one resolution, in order."""


class Head(nn.Sequential):
    """Global average pooling, flatten, linear to the logits."""


class ConvNet(nn.Module):
    """Stem, stages of blocks (each after the first halves the resolution), global average pooling, linear.

    The CIFAR-style layout of He et al. (2015, section 4.2), sized for 28x28 Fashion-MNIST images.
    """

    def __init__(self, make_block: BlockFactory, widths: Sequence[int] = (16, 32, 64),
                 depths: Sequence[int] = (2, 2, 2), in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths and depths need one entry per stage, got {list(widths)} and {list(depths)}.")
        self.stem = Stem(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        plan = stage_plan(depths, widths)  # every block's (in_channels, out_channels, stride), stage after stage
        blocks = iter(plan)
        self.stages = nn.Sequential(*(Stage(*(make_block(*next(blocks)) for _ in range(depth))) for depth in depths))
        channels = plan[-1][1] if plan else widths[0]
        self.head = Head(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Images (N, C, H, W) to class logits (N, num_classes)."""
        return self.head(self.stages(self.stem(x)))


