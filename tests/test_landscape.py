"""Loss-landscape slices: the weights come back after every evaluation, the slices are the losses at the moved
weights, and the curvature share tells a bowl from a saddle."""

import pytest
import torch
from torch import nn

from residual_course import landscape
from residual_course.data import Split
from residual_course.training import evaluate


@pytest.fixture
def model_and_split():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    split = Split(torch.randn(40, 1, 2, 2), torch.randint(0, 3, (40,)))
    model.train()(split.images)
    return model.eval(), split


def test_moved_adds_the_steps_and_puts_the_weights_back(model_and_split):
    model, _ = model_and_split
    before = [p.detach().clone() for p in model.parameters()]
    first, second = [torch.randn_like(p) for p in before], [torch.randn_like(p) for p in before]
    with landscape.moved(model, [first, second], [0.5, -2.0]):
        for p, b, d1, d2 in zip(model.parameters(), before, first, second, strict=True):
            torch.testing.assert_close(p.detach(), b + 0.5 * d1 - 2.0 * d2)
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True))


def test_a_direction_of_the_wrong_shape_is_refused(model_and_split):
    model, _ = model_and_split
    with pytest.raises(ValueError, match="one tensor per parameter"):
        with landscape.moved(model, [[torch.zeros(3)]], [1.0]):
            pass


def test_line_and_plane_are_the_losses_at_the_moved_weights(model_and_split):
    model, split = model_and_split
    d1, d2 = [torch.randn_like(p) for p in model.parameters()], [torch.randn_like(p) for p in model.parameters()]
    steps = [-1.0, 0.0, 0.5]
    line = landscape.line(model, d1, steps, split)
    plane = landscape.plane(model, d1, d2, steps, split)
    assert line.shape == (3,) and plane.shape == (3, 3)
    assert line[1].item() == pytest.approx(evaluate(model, split)[0])
    torch.testing.assert_close(plane[1], line)  # row beta = 0 is the line along the first direction
    with landscape.moved(model, [d1, d2], [0.5, -1.0]):
        assert plane[0, 2].item() == pytest.approx(evaluate(model, split)[0])


def test_nonconvex_share_tells_a_bowl_from_a_saddle():
    grid = torch.linspace(-1, 1, 9)
    a, b = torch.meshgrid(grid, grid, indexing="xy")
    spacing = (grid[1] - grid[0]).item()
    assert landscape.nonconvex_share(a**2 + 3 * b**2 + a * b, spacing) == 0
    assert landscape.nonconvex_share(a**2 - b**2, spacing) == 1
    assert landscape.nonconvex_share(-(a**2) - b**2, spacing) == 1
    assert landscape.nonconvex_share(torch.where(a > 0, -(a**2), a**2) + b**2, spacing) == pytest.approx(3 / 7)


def test_nonconvex_share_below_a_level_counts_the_basin_only():
    steps = torch.linspace(-1, 1, 21, dtype=torch.float64)
    a, b = torch.meshgrid(steps, steps, indexing="ij")
    basin_on_a_plateau = 1 - torch.exp(-3 * (a**2 + b**2))  # a bowl at the centre, flattening out as it curves down
    spacing = float(steps[1] - steps[0])
    assert landscape.nonconvex_share(basin_on_a_plateau, spacing) > 0.8
    assert landscape.nonconvex_share(basin_on_a_plateau, spacing, below=0.3) == 0
    with pytest.raises(ValueError, match="no inner point"):
        landscape.nonconvex_share(basin_on_a_plateau, spacing, below=-1.0)


def test_nonconvex_share_refuses_a_line():
    with pytest.raises(ValueError, match="at least 3 x 3"):
        landscape.nonconvex_share(torch.zeros(9), 0.1)
