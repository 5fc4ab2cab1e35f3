"""Shattered gradients (Balduzzi et al. 2017): networks from one number to one number, whose derivative dy/dx along
the input shows how rough the function a deep network computes is, with and without skip connections; and the same
derivative for an image classifier, along the straight line from one image to another.

One network serves every depth: its units are drawn after its first and last layers, so the network of depth d is
exactly the first d units of a deeper one drawn from the same seed (the explorer cuts one network instead of
building a new one at every step of its slider). The lesson, its check and its explorer all build them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from residual_course.runtime import check_choice

WIDTH, POINTS, INTERVAL = 200, 256, (-2.0, 2.0)  # Balduzzi et al.'s Fig. 1: 200 units, 256 inputs on [-2, 2]
NORMS = ("batch", "none")


def _norm(norm: str, width: int) -> nn.Module:
    """BatchNorm on the batch's own statistics (these networks are measured, never trained), or nothing."""
    check_choice("norm", norm, NORMS)
    return nn.BatchNorm1d(width, track_running_stats=False) if norm == "batch" else nn.Identity()


class Unit(nn.Module):
    """One hidden layer, norm -> ReLU -> Linear; with `skip`, added to its input: h + scale * Linear(ReLU(norm(h))).

    The pre-activation form (nothing after the addition), as in the course's gradient explorer: plain and residual
    networks have the same layers and differ only by the addition.
    """

    def __init__(self, width: int, norm: str) -> None:
        super().__init__()
        self.norm = _norm(norm, width)
        self.linear = nn.Linear(width, width)
        self.skip, self.scale = False, 1.0

    def forward(self, h: Tensor) -> Tensor:
        """The unit's output; with `skip`, the stream plus the scaled branch."""
        branch = self.linear(torch.relu(self.norm(h)))
        return h + self.scale * branch if self.skip else branch


class ScalarNetwork(nn.Module):
    """x (a batch of numbers, shape (N, 1)) -> Linear(1, width) -> the first `depth` units -> norm, ReLU,
    Linear(width, 1)."""

    def __init__(self, units: int, width: int, norm: str) -> None:
        super().__init__()
        self.first = nn.Linear(1, width)
        self.head = nn.Sequential(_norm(norm, width), nn.ReLU(), nn.Linear(width, 1))
        self.units = nn.ModuleList(Unit(width, norm) for _ in range(units))
        self.depth = units

    def configure(self, depth: int, skip: bool, scale: float) -> ScalarNetwork:
        """Run the first `depth` units, with or without skip connections, each branch scaled by `scale`."""
        if not 0 <= depth <= len(self.units):
            raise ValueError(f"depth must be between 0 and this network's {len(self.units)} units, got {depth}.")
        self.depth = depth
        for unit in self.units:
            unit.skip, unit.scale = skip, scale
        return self

    def running(self) -> list[Unit]:
        """The units that run, in order: the blocks of the residual stream."""
        return list(self.units[: self.depth])

    def forward(self, x: Tensor) -> Tensor:
        """y for every x of the batch, shape (N, 1)."""
        h = self.first(x)
        for unit in self.running():
            h = unit(h)
        return self.head(h)


def network(depth: int, skip: bool, norm: str = "batch", scale: float = 1.0, width: int = WIDTH, seed: int = 0,
            units: int | None = None) -> ScalarNetwork:
    """A freshly drawn network of `depth` units (Kaiming weights, zero biases) from `seed`, without gradients.

    The first and last layers are drawn first, then the units in order, so `network(d, ..., units=D)` (D units
    built, the first d run) computes exactly what `network(d, ...)` does: deeper networks extend shallower ones.
    """
    generator = torch.Generator().manual_seed(seed)
    built = ScalarNetwork(depth if units is None else units, width, norm)
    with torch.no_grad():
        for linear in [built.first, built.head[-1], *(unit.linear for unit in built.units)]:
            linear.weight.normal_(0, (2 / linear.in_features) ** 0.5, generator=generator)
            linear.bias.zero_()
    built.requires_grad_(False)
    return built.configure(depth, skip, scale)


def input_points(count: int = POINTS, device: torch.device | str | None = None) -> Tensor:
    """`count` evenly spaced inputs on INTERVAL, as a batch of shape (count, 1)."""
    return torch.linspace(*INTERVAL, count, device=device)[:, None]


def derivative(model: ScalarNetwork, points: Tensor) -> Tensor:
    """dy/dx at every point, shape (N,): the network's derivative along its input.

    Each BatchNorm normalises with the statistics of these points, held fixed, so each point's derivative is its
    own (differentiating through the batch's mean and variance would mix the points). Computed forward, one pass:
    every layer carries its output h and dh/dx beside it (one number per unit and point, as the input is one
    number), which costs about two forward passes and no backward one.
    """
    h = model.first(points)
    tangent = model.first.weight[:, 0].expand_as(h)
    for unit in model.running():
        branch, branch_tangent = _dual_layer(unit.norm, unit.linear, h, tangent)
        h, tangent = (h + unit.scale * branch, tangent + unit.scale * branch_tangent) if unit.skip else (
            branch, branch_tangent)
    _, tangent = _dual_layer(model.head[0], model.head[-1], h, tangent)
    return tangent[:, 0]


def _dual_layer(norm: nn.Module, linear: nn.Linear, h: Tensor, tangent: Tensor) -> tuple[Tensor, Tensor]:
    """Linear(ReLU(norm(h))) and its derivative, given h's derivative: the chain rule, one layer forward."""
    if isinstance(norm, nn.BatchNorm1d):
        scale = norm.weight / torch.sqrt(h.var(dim=0, unbiased=False) + norm.eps)
        h, tangent = (h - h.mean(dim=0)) * scale + norm.bias, tangent * scale
    active = h > 0
    both = torch.cat([h * active, tangent * active]) @ linear.weight.T
    return both[: len(h)] + linear.bias, both[len(h):]


def along_path(model: nn.Module, start: Tensor, end: Tensor, batch: Tensor, points: int = POINTS) -> Tensor:
    """d y / d t of the model's first output y at `points` evenly spaced inputs start + t (end - start), t in [0, 1]:
    an image classifier's derivative along the line from one image to another, shape (points,).

    Each BatchNorm normalises with the statistics of `batch` (real training images: the line's points are not a
    batch the network would see), held fixed. The model's mode and buffers are left as they were.
    """
    with _statistics_of(model, batch):
        t = torch.linspace(0, 1, points, device=start.device).requires_grad_(True)
        inputs = start + t.view(-1, *[1] * start.dim()) * (end - start)
        (gradient,) = torch.autograd.grad(model(inputs)[:, 0].sum(), t)
    return gradient.detach()


@contextlib.contextmanager
def _statistics_of(model: nn.Module, batch: Tensor) -> Iterator[None]:
    """Inside: every BatchNorm holds `batch`'s statistics as it reaches that layer, in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(norm.momentum, {name: b.clone() for name, b in norm.named_buffers()}) for norm in norms]
    was_training = model.training
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
        with torch.no_grad():
            model.train()(batch)
        yield model.eval()
    finally:
        model.train(was_training)
        with torch.no_grad():
            for norm, (momentum, buffers) in zip(norms, saved, strict=True):
                norm.momentum = momentum
                for name, buffer in norm.named_buffers():
                    buffer.copy_(buffers[name])
