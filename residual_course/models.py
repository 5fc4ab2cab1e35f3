"""Demo classifiers whose depth, activation, init, normalisation and skip connections the notebooks vary."""

from __future__ import annotations

from torch import Tensor, nn

from residual_course.runtime import check_choice

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("default", "xavier", "kaiming")
NORMS = ("none", "batch", "layer")


def _activation(name: str) -> nn.Module:
    """Map a course-level activation name to its module, so every builder spells them the same way."""
    check_choice("activation", name, ACTIVATIONS)
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[name]()


def _norm(name: str, width: int) -> nn.Module:
    """Map a normalisation name to its module; "none" is an Identity so all hidden units look alike."""
    check_choice("norm", name, NORMS)
    return {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[name](width)


class HiddenUnit(nn.Sequential):
    """Linear -> norm -> activation: the plain building block whose derivatives multiply up with depth.

    Its own class (like MLP's), so that the checks can tell the course's network from one a learner wrote.
    """

    def __init__(self, in_features: int, out_features: int, activation: str, norm: str) -> None:
        super().__init__(nn.Linear(in_features, out_features), _norm(norm, out_features), _activation(activation))


class MLP(nn.Sequential):
    """Flatten, the hidden units, then a Linear layer to the logits."""


class ResidualLinear(nn.Module):
    """x + linear(act(norm(x))): the identity path lets the gradient skip the shrinking derivatives.

    The pre-activation form of lesson 05's PreActBlock (norm and activation before the layer, nothing after the
    addition): with a sigmoid after the addition the identity path would pass through sigmoid' <= 1/4 again.
    """

    def __init__(self, width: int, activation: str = "sigmoid", norm: str = "none") -> None:
        super().__init__()
        self.norm = _norm(norm, width)
        self.activation = _activation(activation)
        self.linear = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """The input plus the branch, nothing after the addition."""
        return x + self.linear(self.activation(self.norm(x)))


def _initialize(model: nn.Module, init: str, activation: str) -> None:
    """Re-draw every Linear weight with the chosen scheme, to show how initial scale steers the gradients."""
    check_choice("init", init, INITS)
    if init == "default":
        return
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            if init == "xavier":
                nn.init.xavier_normal_(layer.weight, gain=nn.init.calculate_gain(activation))
            else:
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def make_mlp(
    depth: int,
    width: int = 64,
    activation: str = "sigmoid",
    init: str = "default",
    norm: str = "none",
    skip: bool = False,
    in_features: int = 784,
    num_classes: int = 10,
) -> nn.Module:
    """An image classifier with `depth` Linear layers, the smallest model that shows gradients vanishing."""
    if depth < 2:
        raise ValueError(f"depth must be at least 2 (an input and an output Linear layer), got {depth}.")
    hidden = [
        ResidualLinear(width, activation, norm) if skip else HiddenUnit(width, width, activation, norm)
        for _ in range(depth - 2)
    ]
    model = MLP(
        nn.Flatten(),
        HiddenUnit(in_features, width, activation, norm),
        *hidden,
        nn.Linear(width, num_classes),
    )
    _initialize(model, init, activation)
    return model


def shallower_mlp(deeper: nn.Module, depth: int, init: str = "default", activation: str = "sigmoid") -> nn.Module:
    """`make_mlp(depth, ...)` made of a deeper make_mlp's modules (same width, activation, norm and skip), its weights
    drawn again from torch's global generator in make_mlp's order: after the same seed, the same weights as a new
    make_mlp, without building ~200 modules (the gradient explorer redraws at every step of its depth slider).

    The modules are shared with `deeper`, whose unused layers keep stale weights."""
    flatten, first, *hidden, last = deeper
    if not 2 <= depth <= len(hidden) + 2:
        raise ValueError(f"depth must be between 2 and the deeper model's {len(hidden) + 2}, got {depth}.")
    hidden = hidden[: depth - 2]
    for layer in (*hidden, first, last):  # make_mlp builds its list of hidden units before the input unit
        for module in layer.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    model = MLP(flatten, first, *hidden, last)
    _initialize(model, init, activation)
    return model
