"""Gradient diagnostics: vanishing in plain sigmoid MLPs, its cure by skips, and the plumbing around it."""

import math

import pytest
import torch
from torch import Tensor, nn

from residual_course import seed_everything
from residual_course.diagnostics import ActivationHistogram, activation_histograms
from residual_course.gradients import (
    first_to_last_ratio,
    gradient_profile,
    jacobian_at,
    sigmoid_derivative_bound,
)
from residual_course.models import make_mlp


@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    """A seeded image-like batch: 64 random 28x28 images in [0, 1] with random labels."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 28, 28, generator=generator), torch.randint(0, 10, (64,), generator=generator)


def profile_20_layer_sigmoid_mlp(batch: tuple[Tensor, Tensor], skip: bool) -> list[float]:
    """Gradient norms of the course's reference model, seeded so plain and residual share their weights."""
    seed_everything(0)
    return gradient_profile(make_mlp(20, activation="sigmoid", skip=skip), *batch)


def test_plain_sigmoid_gradients_vanish_and_skips_keep_them(batch: tuple[Tensor, Tensor]) -> None:
    # Measured over 4 data x 3 model seeds: plain ratio 2e-16 to 3e-16, residual 0.026 to 0.031.
    plain = profile_20_layer_sigmoid_mlp(batch, skip=False)
    residual = profile_20_layer_sigmoid_mlp(batch, skip=True)
    assert len(plain) == len(residual) == 20
    assert first_to_last_ratio(plain) < 1e-3
    assert first_to_last_ratio(residual) > 1e-2
    assert first_to_last_ratio(residual) > 1e10 * first_to_last_ratio(plain)


def test_a_model_without_weight_matrices_is_rejected(batch: tuple[Tensor, Tensor]) -> None:
    with pytest.raises(ValueError, match="no layer"):
        gradient_profile(nn.Sequential(nn.Flatten(), nn.ReLU()), *batch)


def test_a_layer_left_out_of_the_forward_pass_is_named(batch: tuple[Tensor, Tensor]) -> None:
    class PartlyUsed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = make_mlp(3), nn.Linear(3, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.used(x)

    model = PartlyUsed()
    with pytest.raises(ValueError, match="Linear layer got no gradient"):
        gradient_profile(model, *batch)


def test_norms_match_the_weight_grads(batch: tuple[Tensor, Tensor]) -> None:
    model = make_mlp(5, norm="layer", skip=True)
    norms = gradient_profile(model, *batch)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    assert norms == pytest.approx([torch.linalg.vector_norm(layer.weight.grad).item() for layer in linears])


def test_without_targets_a_random_output_gradient_is_sent_back(batch: tuple[Tensor, Tensor]) -> None:
    model = make_mlp(4, activation="tanh")
    seed_everything(1)
    norms = gradient_profile(model, batch[0])
    seed_everything(1)
    model.zero_grad()
    outputs = model(batch[0])
    outputs.backward(torch.randn_like(outputs))
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    assert norms == pytest.approx([layer.weight.grad.norm().item() for layer in linears])


class TinyResidualConvNet(nn.Module):
    """A conv net with an in-place ReLU after a residual add: the case module backward hooks break on."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 10)

    def forward(self, x: Tensor) -> Tensor:
        """stem -> relu -> (x + bn(conv(x))) -> relu -> global average pool -> head."""
        x = self.relu(self.stem(x))
        x = self.relu(x + self.bn(self.conv(x)))
        return self.head(x.mean(dim=(2, 3)))


def test_conv_net_with_in_place_relu_and_residual_add(batch: tuple[Tensor, Tensor]) -> None:
    model = TinyResidualConvNet()
    norms = gradient_profile(model, *batch)
    assert len(norms) == 3  # stem, conv, head: BatchNorm's 1-d weight is no layer of its own
    assert all(math.isfinite(norm) and norm > 0 for norm in norms)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_profile_keeps_the_model_mode(batch: tuple[Tensor, Tensor], training: bool) -> None:
    model = make_mlp(4, norm="batch").train(training)
    gradient_profile(model, *batch)
    assert model.training is training


def all_forward_hooks(model: nn.Module) -> list:
    """Every forward hook still registered anywhere in the model."""
    return [hook for module in model.modules() for hook in module._forward_hooks.values()]


def test_activation_histograms_in_forward_order_and_hooks_removed(batch: tuple[Tensor, Tensor]) -> None:
    model = make_mlp(6, activation="tanh", skip=True)
    stats = activation_histograms(model, batch[0])
    tanh_names = [name for name, module in model.named_modules() if isinstance(module, nn.Tanh)]
    assert [stat.name for stat in stats] == tanh_names
    assert all(isinstance(stat, ActivationHistogram) and 0 <= stat.saturated_fraction <= 1 for stat in stats)
    assert all(-1 <= stat.mean <= 1 and stat.std >= 0 for stat in stats)
    assert all_forward_hooks(model) == []


def test_activation_histograms_remove_hooks_on_error() -> None:
    model = make_mlp(4)
    with pytest.raises(RuntimeError):
        activation_histograms(model, torch.rand(2, 5))
    assert all_forward_hooks(model) == []


def constant_layer(bias: float, activation: nn.Module) -> nn.Sequential:
    """Linear(2, 3) that ignores its input and outputs `bias`, to pin an activation's input."""
    linear = nn.Linear(2, 3)
    nn.init.zeros_(linear.weight)
    nn.init.constant_(linear.bias, bias)
    return nn.Sequential(linear, activation)


@pytest.mark.parametrize(
    ("bias", "activation", "saturated_fraction"),
    [
        (0.0, nn.Sigmoid(), 0.0),
        (10.0, nn.Sigmoid(), 1.0),
        (-10.0, nn.Sigmoid(), 1.0),
        (0.0, nn.Tanh(), 0.0),
        (-10.0, nn.Tanh(), 1.0),
        (1.0, nn.ReLU(inplace=True), 0.0),
        (-1.0, nn.ReLU(), 1.0),
    ],
)
def test_saturated_fraction_per_activation(bias: float, activation: nn.Module, saturated_fraction: float) -> None:
    (stat,) = activation_histograms(constant_layer(bias, activation), torch.randn(8, 2))
    assert stat.saturated_fraction == saturated_fraction
    assert stat.std == pytest.approx(0.0, abs=1e-6)


def test_sigmoid_derivative_bound() -> None:
    assert sigmoid_derivative_bound(20) == 0.25**20
    assert sigmoid_derivative_bound(0) == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        sigmoid_derivative_bound(-1)


def test_first_to_last_ratio() -> None:
    assert first_to_last_ratio([1.0, 2.0, 4.0]) == 0.25
    assert math.isnan(first_to_last_ratio([1.0, 0.0]))


def test_jacobian_at_differentiates_a_batch_function_at_one_vector():
    weight = torch.randn(4, 4)
    x = torch.randn(4)
    jacobian = jacobian_at(lambda batch: torch.tanh(batch @ weight.T) + batch, x)
    expected = (1 - torch.tanh(weight @ x) ** 2)[:, None] * weight + torch.eye(4)
    assert torch.allclose(jacobian, expected, atol=1e-6)
