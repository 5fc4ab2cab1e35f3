"""The demo model builders: layer counts, shapes, skip connections, initialisations and bad input."""

import math

import pytest
import torch
from torch import nn

from residual_course.models import ACTIVATIONS, INITS, NORMS, ResidualLinear, make_mlp, shallower_mlp
from residual_course.runtime import seed_everything


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's Linear layers in registration order, which must be forward order."""
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("depth", [2, 3, 20])
def test_depth_counts_linear_layers_first_to_last(depth: int, skip: bool) -> None:
    model = make_mlp(depth, width=32, skip=skip)
    layers = linear_layers(model)
    assert len(layers) == depth
    assert (layers[0].in_features, layers[0].out_features) == (784, 32)
    assert (layers[-1].in_features, layers[-1].out_features) == (32, 10)
    residual_blocks = [module for module in model.modules() if isinstance(module, ResidualLinear)]
    assert len(residual_blocks) == (depth - 2 if skip else 0)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_accepts_images_and_flat_input(activation: str, norm: str) -> None:
    model = make_mlp(4, width=16, activation=activation, norm=norm, skip=True)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)
    assert make_mlp(3, in_features=12, num_classes=3)(torch.rand(2, 12)).shape == (2, 3)


@pytest.mark.parametrize("norm", NORMS)
def test_skip_model_has_the_same_parameters_as_the_plain_one(norm: str) -> None:
    def count(model: nn.Module) -> int:
        return sum(parameter.numel() for parameter in model.parameters())

    assert count(make_mlp(10, norm=norm, skip=True)) == count(make_mlp(10, norm=norm, skip=False))


def test_residual_linear_adds_its_input_and_nothing_follows_the_addition() -> None:
    block = ResidualLinear(3, activation="sigmoid")
    nn.init.zeros_(block.linear.weight)
    nn.init.zeros_(block.linear.bias)
    x = torch.randn(4, 3)
    torch.testing.assert_close(block(x), x)  # a zero branch leaves the input as it is (pre-activation form)
    nn.init.eye_(block.linear.weight)
    torch.testing.assert_close(block(x), x + torch.sigmoid(x))


def hidden_weight_std(init: str, activation: str) -> float:
    """Std of a 256x256 hidden weight: 65536 draws pin it to well under 1 %."""
    torch.manual_seed(0)
    return linear_layers(make_mlp(3, width=256, activation=activation, init=init))[1].weight.std().item()


@pytest.mark.parametrize(
    ("init", "activation", "expected_std"),
    [
        ("default", "sigmoid", 1 / math.sqrt(3 * 256)),  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), ...)
        ("xavier", "sigmoid", math.sqrt(2 / (256 + 256))),
        ("xavier", "tanh", 5 / 3 * math.sqrt(2 / (256 + 256))),
        ("xavier", "relu", math.sqrt(2) * math.sqrt(2 / (256 + 256))),
        ("kaiming", "sigmoid", math.sqrt(2 / 256)),
        ("kaiming", "relu", math.sqrt(2 / 256)),
    ],
)
def test_init_sets_the_weight_std(init: str, activation: str, expected_std: float) -> None:
    assert hidden_weight_std(init, activation) == pytest.approx(expected_std, rel=0.03)


@pytest.mark.parametrize("init", ["xavier", "kaiming"])
def test_xavier_and_kaiming_zero_the_biases(init: str) -> None:
    for layer in linear_layers(make_mlp(4, init=init)):
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize(
    ("kwargs", "choices"),
    [
        ({"activation": "gelu"}, ", ".join(map(repr, ACTIVATIONS))),
        ({"init": "orthogonal"}, ", ".join(map(repr, INITS))),
        ({"norm": "group"}, ", ".join(map(repr, NORMS))),
    ],
)
def test_unknown_names_list_the_valid_choices(kwargs: dict[str, str], choices: str) -> None:
    with pytest.raises(ValueError, match=choices):
        make_mlp(3, **kwargs)


@pytest.mark.parametrize("depth", [1, 0, -3])
def test_depth_below_two_is_rejected(depth: int) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        make_mlp(depth)


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize(("activation", "init", "norm"),
                         [("sigmoid", "default", "none"), ("tanh", "xavier", "batch"), ("relu", "kaiming", "layer")])
def test_a_shallower_mlp_has_a_new_make_mlps_weights_bit_for_bit(activation: str, init: str, norm: str,
                                                                 skip: bool) -> None:
    """Redrawn in make_mlp's order after the same seed: the same weights and buffers, at any depth up to the
    deeper model's, also after a deeper redraw used the shared modules."""
    deeper = make_mlp(12, width=16, activation=activation, norm=norm, skip=skip)
    for depth in (12, 5, 2, 9):
        seed_everything(depth)
        made = make_mlp(depth, width=16, activation=activation, init=init, norm=norm, skip=skip)
        seed_everything(depth)
        shallower = shallower_mlp(deeper, depth, init=init, activation=activation)
        assert [type(layer) for layer in shallower] == [type(layer) for layer in made]
        assert made.state_dict().keys() == shallower.state_dict().keys()
        for name, tensor in made.state_dict().items():
            assert torch.equal(tensor, shallower.state_dict()[name]), name


@pytest.mark.parametrize("depth", [1, 13])
def test_a_shallower_mlp_lies_between_two_and_the_deeper_depth(depth: int) -> None:
    with pytest.raises(ValueError, match="between 2 and the deeper model's 12"):
        shallower_mlp(make_mlp(12, width=16), depth)
