"""Training diagnostics: update-to-data ratios, activation and gradient histograms and dead ReLUs, on real models."""

import functools
import itertools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.diagnostics import (
    ActivationHistogram,
    activation_gradient_histograms,
    activation_histograms,
    dead_unit_fractions,
    recording_update_ratios,
    spread_profile,
    stream_variances,
    update_ratios,
)

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")),
]


@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    """256 seeded standard-normal examples of 20 features, with labels from 10 classes."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(256, 20, generator=generator), torch.randint(0, 10, (256,), generator=generator)


def mlp(activation: type[nn.Module], weight_std: float | None = None, depth: int = 3) -> nn.Sequential:
    """Linear-activation pairs then a 10-way head; `weight_std` redraws every weight from N(0, std²)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for index in range(depth):
        layers += [nn.Linear(20 if index == 0 else 64, 64), activation()]
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    if weight_std is not None:
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=weight_std)
    return model


def model_state(model: nn.Module) -> dict[str, object]:
    """Everything a diagnostic must leave as it found it."""
    return {
        "modes": [module.training for module in model.modules()],
        "tensors": {name: tensor.detach().clone() for name, tensor in itertools.chain(model.named_parameters(),
                                                                                     model.named_buffers())},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
                     for m in model.modules()),
    }


def assert_same_state(before: dict[str, object], after: dict[str, object]) -> None:
    """Same modes, flags, tensors and grads, and no hook anywhere."""
    assert before["modes"] == after["modes"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"] == 0
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, tensor in before["tensors"].items():
        assert torch.equal(tensor, after["tensors"][name]), name
    for name, grad in before["grads"].items():
        assert (grad is None and after["grads"][name] is None) or torch.equal(grad, after["grads"][name]), name


# --- update-to-data ratios -------------------------------------------------------------------------------------------


def test_one_sgd_step_ratio_is_log10_of_lr_grad_over_weight(batch: tuple[Tensor, Tensor]) -> None:
    model, lr = mlp(nn.Tanh), 0.1
    ratios = update_ratios(model, [batch], steps=1, lr=lr)
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    by_hand = {name: math.log10(lr * p.grad.norm().item() / p.norm().item())
               for name, p in model.named_parameters() if p.ndim >= 2}
    assert list(ratios) == ["0.weight", "2.weight", "4.weight", "6.weight"] == list(by_hand)
    for name, values in ratios.items():
        assert values == [pytest.approx(by_hand[name], abs=1e-4)]


def test_ratios_measure_the_step_taken_so_adams_first_step_is_lr_per_entry(batch: tuple[Tensor, Tensor]) -> None:
    """Adam's first step moves every entry by lr (times the gradient's sign), whatever the gradient's size."""
    model, lr = mlp(nn.Tanh), 1e-3
    ratios = update_ratios(model, itertools.repeat(batch), steps=5, lr=lr, optimizer=torch.optim.Adam)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            assert len(ratios[name]) == 5
            assert ratios[name][0] == pytest.approx(math.log10(lr * math.sqrt(p.numel()) / p.norm().item()), abs=1e-3)


def test_update_ratios_trains_a_copy_and_leaves_the_model_alone(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.ReLU).eval()
    model[0].weight.requires_grad_(False)
    before = model_state(model)
    momentum = functools.partial(torch.optim.SGD, momentum=0.9)
    ratios = update_ratios(model, itertools.repeat(batch), steps=3, lr=0.05, optimizer=momentum)
    assert_same_state(before, model_state(model))
    assert "0.weight" not in ratios and all(len(values) == 3 for values in ratios.values())


def test_recording_needs_a_weight_the_optimizer_updates() -> None:
    model = mlp(nn.Tanh)
    biases_only = torch.optim.SGD([layer.bias for layer in model if isinstance(layer, nn.Linear)], lr=0.1)
    with pytest.raises(ValueError, match="no weight matrix"), recording_update_ratios(model, biases_only):
        pass


def test_update_ratios_says_when_batches_run_out(batch: tuple[Tensor, Tensor]) -> None:
    with pytest.raises(ValueError, match="ran out after 2 of 3 steps"):
        update_ratios(mlp(nn.Tanh), [batch, batch], steps=3, lr=0.1)


def test_recording_follows_your_own_loop_and_stops_on_exit(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.Tanh)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with recording_update_ratios(model, optimizer) as ratios:
        for _ in range(4):
            optimizer.zero_grad()
            F.cross_entropy(model(batch[0]), batch[1]).backward()
            optimizer.step()
    optimizer.step()
    assert [len(values) for values in ratios.values()] == [4, 4, 4, 4]
    assert all(-6 < value < 0 for values in ratios.values() for value in values)


# --- activation and gradient histograms ------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", [nn.Sigmoid, nn.Tanh])
def test_large_init_saturates_and_default_init_does_not(batch: tuple[Tensor, Tensor],
                                                        activation: type[nn.Module]) -> None:
    large = activation_histograms(mlp(activation, weight_std=3.0), batch[0])
    default = activation_histograms(mlp(activation), batch[0])
    assert [h.name for h in large] == ["1", "3", "5"]
    assert all(h.saturated_fraction > 0.6 for h in large)
    assert all(h.saturated_fraction < 0.05 for h in default)


def test_histograms_bin_every_value_and_summarise_it(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.Tanh)
    first = activation_histograms(model, batch[0], bins=20)[0]
    output = torch.tanh(model[0](batch[0]))
    assert isinstance(first, ActivationHistogram)
    assert sum(first.counts) == output.numel() and len(first.edges) == 21
    assert [first.edges[0], first.edges[-1]] == pytest.approx([output.min().item(), output.max().item()])
    assert first.mean == pytest.approx(output.mean().item()) and first.std == pytest.approx(output.std().item())
    assert first.saturated_fraction == pytest.approx((output.abs() > 0.97).float().mean().item())
    assert "saturated" in first.describe()


def test_a_dead_layer_is_one_full_bin_around_zero(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.ReLU, depth=1)
    with torch.no_grad():
        model[0].bias.fill_(-1e3)
    (dead,) = activation_histograms(model, batch[0], bins=4)
    assert (dead.edges[0], dead.edges[-1]) == (-0.5, 0.5) and dead.counts == [0, 0, 256 * 64, 0]
    assert (dead.mean, dead.std, dead.saturated_fraction) == (0.0, 0.0, 1.0)


def test_gradient_histograms_are_the_loss_gradient_at_each_activation(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.Sigmoid, depth=2)
    histograms = activation_gradient_histograms(model, *batch)
    hidden = torch.sigmoid(model[2](torch.sigmoid(model[0](batch[0]))))
    (by_hand,) = torch.autograd.grad(F.cross_entropy(model[4](hidden), batch[1]), hidden)
    assert [h.name for h in histograms] == ["1", "3"]
    assert histograms[1].mean == pytest.approx(by_hand.mean().item(), rel=1e-4)
    assert histograms[1].std == pytest.approx(by_hand.std().item(), rel=1e-4)
    assert sum(histograms[1].counts) == by_hand.numel()
    assert all(p.grad is None for p in model.parameters())


def test_a_reused_module_gives_one_histogram_per_call(batch: tuple[Tensor, Tensor]) -> None:
    class TwoReLUsOneModule(nn.Module):
        """Like torchvision's BasicBlock, which calls its `self.relu` twice."""

        def __init__(self) -> None:
            super().__init__()
            self.first, self.second, self.relu = nn.Linear(20, 8), nn.Linear(8, 10), nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            return self.relu(self.second(self.relu(self.first(x))))

    names = [h.name for h in activation_histograms(TwoReLUsOneModule(), batch[0])]
    assert names == ["relu", "relu (call 2)"]


def test_histograms_reject_activations_without_a_saturation_test(batch: tuple[Tensor, Tensor]) -> None:
    with pytest.raises(ValueError, match="GELU"):
        activation_histograms(mlp(nn.GELU), batch[0], types=(nn.GELU,))


def test_gradient_histograms_need_something_to_differentiate(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.Tanh).requires_grad_(False)
    with pytest.raises(ValueError, match="requires grad"):
        activation_gradient_histograms(model, *batch)


# --- dead ReLUs ------------------------------------------------------------------------------------------------------


def test_a_huge_negative_bias_kills_every_unit_after_it(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.ReLU, depth=2)
    assert dead_unit_fractions(model, batch[0]) == {"1": 0.0, "3": 0.0}
    with torch.no_grad():
        model[0].bias.fill_(-1e3)
    dead = dead_unit_fractions(model, batch[0])
    # The second layer now sees only zeros, so its units output relu(bias): dead exactly where the bias is <= 0.
    assert dead == {"1": 1.0, "3": pytest.approx((model[2].bias <= 0).float().mean().item())}


def test_dead_conv_units_are_channels_at_each_position() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([-1e3, -1e3, 1e3, 1e3]))  # two channels never fire, two always do
    assert dead_unit_fractions(model, torch.rand(16, 1, 8, 8)) == {"1": 0.5}


# --- every diagnostic leaves the model as it found it, on every device ----------------------------------------------

DIAGNOSTICS: dict[str, Callable[[nn.Module, Tensor, Tensor], object]] = {
    "activation_histograms": lambda model, inputs, targets: activation_histograms(model, inputs),
    "activation_gradient_histograms": activation_gradient_histograms,
    "dead_unit_fractions": lambda model, inputs, targets: dead_unit_fractions(model, inputs),
    "spread_profile": lambda model, inputs, targets: spread_profile(model, inputs),
    "update_ratios": lambda model, inputs, targets: update_ratios(model, [(inputs, targets)], steps=1, lr=0.1),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("diagnostic", DIAGNOSTICS)
def test_diagnostics_leave_the_model_as_found(batch: tuple[Tensor, Tensor], device: str, train: bool,
                                              diagnostic: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 10)).to(device).train(train)
    model[4].train(not train)  # a submodule in another mode than its parent must stay so
    model[3].bias.requires_grad_(False)
    F.cross_entropy(model(batch[0].to(device)), batch[1].to(device)).backward()  # existing grads must survive
    before = model_state(model)
    result = DIAGNOSTICS[diagnostic](model, *batch)  # inputs on the CPU: moved to the model's device
    assert result
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("device", DEVICES)
def test_batchnorm_statistics_survive_a_pass_in_train_mode(batch: tuple[Tensor, Tensor], device: str) -> None:
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.Sigmoid()).to(device).train()
    before = model_state(model)
    histograms = activation_histograms(model, batch[0])
    assert histograms[0].mean == pytest.approx(0.5, abs=0.05)  # batch statistics: the sigmoid sees mean-0 inputs
    assert_same_state(before, model_state(model))


def test_the_spread_is_each_units_batch_std_at_each_layers_input_averaged(batch: tuple[Tensor, Tensor]) -> None:
    model = mlp(nn.Tanh)
    inputs = batch[0]
    hidden = torch.tanh(model[0](inputs))
    spreads = spread_profile(model, inputs)
    assert len(spreads) == 4  # three hidden Linear layers and the head
    assert spreads[0] == pytest.approx(inputs.std(dim=0).mean().item(), rel=1e-5)
    assert spreads[1] == pytest.approx(hidden.std(dim=0).mean().item(), rel=1e-5)
    norms = spread_profile(nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8)).train(), inputs, types=(nn.BatchNorm1d,))
    assert len(norms) == 1 and norms[0] > 0


def test_one_vector_for_every_example_has_spread_zero_and_a_skip_path_keeps_it() -> None:
    """The forward collapse a deep sigmoid MLP shows, in small: a layer that ignores its input."""
    torch.manual_seed(0)
    dead = nn.Linear(20, 20)
    nn.init.zeros_(dead.weight)
    inputs = torch.randn(32, 20)
    assert spread_profile(nn.Sequential(dead, nn.Linear(20, 10)), inputs)[1] == 0.0

    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branch = dead

        def forward(self, x: Tensor) -> Tensor:
            return x + self.branch(x)

    assert spread_profile(nn.Sequential(Skip(), nn.Linear(20, 10)), inputs)[1] == pytest.approx(
        inputs.std(dim=0).mean().item(), rel=1e-5)


def test_a_spread_needs_two_examples_and_a_layer_to_measure() -> None:
    with pytest.raises(ValueError, match="at least 2 examples"):
        spread_profile(nn.Linear(4, 2), torch.randn(1, 4))
    with pytest.raises(ValueError, match="ran no layer"):
        spread_profile(nn.ReLU(), torch.randn(3, 4))


def test_stream_variances_add_up_the_blocks_contributions():
    torch.manual_seed(0)
    x = torch.randn(4096, 8)

    class AddUnitNoise(nn.Module):  # x + an independent unit-variance term: the stream's variance grows by 1
        def forward(self, stream):
            return stream + torch.randn_like(stream)

    variances = stream_variances([AddUnitNoise() for _ in range(3)], x)
    assert [round(v) for v in variances] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least 2 examples"):
        stream_variances([nn.Identity()], x[:1])
