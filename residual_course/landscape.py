"""Loss-landscape slices (Li et al. 2018): the loss of a trained network at weights moved along given directions,
on a line or a plane through its trained weights, and how curved such a plane is.

The directions are the caller's (the lesson's learners build filter-normalised ones); a direction is one tensor per
parameter, in `model.parameters()` order. The loss is `training.evaluate`'s: eval mode, so BatchNorm uses its
running statistics, as in Li et al.'s code, and buffers are never moved. The model's weights are put back after
every evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from residual_course.data import Split
from residual_course.training import evaluate

Direction = Sequence[Tensor]


@contextlib.contextmanager
def moved(model: nn.Module, directions: Sequence[Direction], steps: Sequence[float]) -> Iterator[nn.Module]:
    """Inside, the model's weights are theta + sum of steps[i] * directions[i]; theta again after."""
    parameters = list(model.parameters())
    for direction in directions:
        if len(direction) != len(parameters) or any(d.shape != p.shape for d, p in zip(direction, parameters,
                                                                                         strict=True)):
            raise ValueError("a direction holds one tensor per parameter of the model, each of its parameter's "
                             "shape, in model.parameters() order")
    saved = [p.detach().clone() for p in parameters]
    try:
        with torch.no_grad():
            for parameter, *parts in zip(parameters, *directions, strict=True):
                for step, part in zip(steps, parts, strict=True):
                    parameter.add_(part.to(parameter.device), alpha=step)
        yield model
    finally:
        with torch.no_grad():
            for parameter, original in zip(parameters, saved, strict=True):
                parameter.copy_(original)


def line(model: nn.Module, direction: Direction, steps: Sequence[float], split: Split) -> Tensor:
    """The loss at theta + a * direction for every step a: a 1-D slice, shape (len(steps),)."""
    losses = []
    for step in steps:
        with moved(model, [direction], [step]):
            losses.append(evaluate(model, split)[0])
    return torch.tensor(losses)


def plane(model: nn.Module, first: Direction, second: Direction, steps: Sequence[float], split: Split) -> Tensor:
    """The loss at theta + a * first + b * second on the grid steps x steps: a 2-D slice, row b, column a."""
    losses = [[0.0] * len(steps) for _ in steps]
    for row, b in enumerate(steps):
        for column, a in enumerate(steps):
            with moved(model, [first, second], [a, b]):
                losses[row][column] = evaluate(model, split)[0]
    return torch.tensor(losses)


def nonconvex_share(surface: Tensor, spacing: float, below: float | None = None) -> float:
    """The share of a slice's inner grid points where it curves down along some direction of the plane.

    At each point with four neighbours, the Hessian of the slice from central finite differences (grid `spacing`
    apart); the point counts when its smaller eigenvalue is negative (a bowl is convex everywhere: share 0). With
    `below`, only the points whose value is below it are counted: the basin, not the plateau around it.
    """
    if surface.ndim != 2 or min(surface.shape) < 3:
        raise ValueError(f"a 2-D slice of at least 3 x 3 points is needed, got shape {tuple(surface.shape)}.")
    z = surface.double()
    inner = z[1:-1, 1:-1]
    along_a = (z[1:-1, 2:] - 2 * inner + z[1:-1, :-2]) / spacing**2
    along_b = (z[2:, 1:-1] - 2 * inner + z[:-2, 1:-1]) / spacing**2
    mixed = (z[2:, 2:] - z[2:, :-2] - z[:-2, 2:] + z[:-2, :-2]) / (4 * spacing**2)
    half_trace, determinant = (along_a + along_b) / 2, along_a * along_b - mixed**2
    smaller = half_trace - torch.sqrt((half_trace**2 - determinant).clamp(min=0))
    counted = inner < below if below is not None else torch.ones_like(inner, dtype=torch.bool)
    if not counted.any():
        raise ValueError(f"no inner point of the slice is below {below}: there is no basin to measure.")
    return (smaller[counted] < 0).double().mean().item()
