"""Demo classifiers whose depth, activation, init, normalisation and skip connections the notebooks vary."""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("default", "xavier", "kaiming")
NORMS = ("none", "batch", "layer")


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    """Fail early with the valid spellings, not deep inside PyTorch."""
    if value not in choices:
        raise ValueError(f"Unknown {kind} {value!r}: choose one of {', '.join(choices)}.")


def _activation(name: str) -> nn.Module:
    """Map a course-level activation name to its module, so every builder spells them the same way."""
    _check_choice("activation", name, ACTIVATIONS)
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[name]()


def _norm(name: str, width: int) -> nn.Module:
    """Map a normalisation name to its module; "none" is an Identity so all hidden units look alike."""
    _check_choice("norm", name, NORMS)
    return {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[name](width)


def _hidden_unit(in_features: int, out_features: int, activation: str, norm: str) -> nn.Sequential:
    """Linear -> norm -> activation: the plain building block whose derivatives multiply up with depth."""
    return nn.Sequential(nn.Linear(in_features, out_features), _norm(norm, out_features), _activation(activation))


class ResidualLinear(nn.Module):
    """x + act(norm(linear(x))): the identity path lets the gradient skip the shrinking derivatives."""

    def __init__(self, width: int, activation: str = "sigmoid", norm: str = "none") -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = _norm(norm, width)
        self.activation = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """Add the block's output to its input, as in a ResNet basic block."""
        return x + self.activation(self.norm(self.linear(x)))


def _initialize(model: nn.Module, init: str, activation: str) -> None:
    """Re-draw every Linear weight with the chosen scheme, to show how initial scale steers the gradients."""
    _check_choice("init", init, INITS)
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
        ResidualLinear(width, activation, norm) if skip else _hidden_unit(width, width, activation, norm)
        for _ in range(depth - 2)
    ]
    model = nn.Sequential(
        nn.Flatten(),
        _hidden_unit(in_features, width, activation, norm),
        *hidden,
        nn.Linear(width, num_classes),
    )
    _initialize(model, init, activation)
    return model
