"""The scalar networks of lesson 04 and their derivatives: exact against autograd, deeper ones extending shallower
ones, and the classifier's derivative along a line leaving the model as it was."""

import pytest
import torch
from torch import nn

from residual_course import shattered


def autograd_derivative(model: shattered.ScalarNetwork, points: torch.Tensor) -> torch.Tensor:
    """dy/dx by autograd, each BatchNorm's batch statistics held fixed (detached), as `derivative` promises."""
    x = points.clone().requires_grad_(True)

    def norm(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if not isinstance(module, nn.BatchNorm1d):
            return h
        mean, var = h.mean(dim=0).detach(), h.var(dim=0, unbiased=False).detach()
        return (h - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias

    h = model.first(x)
    for unit in model.running():
        branch = unit.linear(torch.relu(norm(unit.norm, h)))
        h = h + unit.scale * branch if unit.skip else branch
    y = model.head[-1](torch.relu(norm(model.head[0], h)))
    (gradient,) = torch.autograd.grad(y.sum(), x)
    return gradient[:, 0]


@pytest.mark.parametrize("norm", shattered.NORMS)
@pytest.mark.parametrize(("skip", "scale"), [(False, 1.0), (True, 1.0), (True, 0.3)])
def test_derivative_is_autograds_with_the_batch_statistics_held(norm, skip, scale):
    model = shattered.network(6, skip, norm, scale=scale, width=16, seed=3)
    points = shattered.input_points(64)
    expected = autograd_derivative(model, points)
    torch.testing.assert_close(shattered.derivative(model, points), expected, rtol=1e-4,
                               atol=1e-4 * expected.abs().max().item())  # float32 rounding, at the curve's scale


def test_a_deeper_network_cut_to_depth_computes_the_shallower_one():
    points = shattered.input_points(32)
    shallow = shattered.network(5, True, width=12, seed=1)
    deep = shattered.network(5, True, width=12, seed=1, units=9)
    assert len(deep.units) == 9 and len(deep.running()) == 5
    torch.testing.assert_close(deep(points), shallow(points))
    torch.testing.assert_close(shattered.derivative(deep, points), shattered.derivative(shallow, points))


def test_configure_refuses_a_depth_the_network_does_not_have():
    with pytest.raises(ValueError, match="between 0 and this network's 4 units"):
        shattered.network(4, False, width=8).configure(5, False, 1.0)


def test_an_unknown_norm_is_refused_by_name():
    with pytest.raises(ValueError, match="Unknown norm 'layer'"):
        shattered.network(2, False, "layer")


def test_zero_scale_makes_the_residual_network_its_first_and_last_layers():
    points = shattered.input_points(16)
    residual = shattered.network(7, True, scale=0.0, width=10, seed=2)
    torch.testing.assert_close(residual(points), shattered.network(7, True, width=10, seed=2).configure(0, True, 1.0)(
        points))


def test_input_points_cover_the_interval_evenly():
    points = shattered.input_points()
    assert points.shape == (shattered.POINTS, 1)
    assert points[0].item() == shattered.INTERVAL[0] and points[-1].item() == shattered.INTERVAL[1]


def test_along_path_is_the_derivative_along_the_line_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    batch = torch.randn(20, 2, 3)
    model.train()(batch)  # running statistics that are not the batch's
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    start, end = torch.randn(2, 3), torch.randn(2, 3)
    gradient = shattered.along_path(model, start, end, batch, points=5)
    assert model.training
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in before.items())
    model.eval()  # the batch's statistics, frozen: a cumulative average after one batch
    norm = model[2]
    norm.running_mean.copy_(model[1](batch.flatten(1)).mean(0).detach())
    norm.running_var.copy_(model[1](batch.flatten(1)).var(0).detach())
    t = torch.linspace(0, 1, 5).requires_grad_(True)
    (expected,) = torch.autograd.grad(model(start + t.view(-1, 1, 1) * (end - start))[:, 0].sum(), t)
    torch.testing.assert_close(gradient, expected)
