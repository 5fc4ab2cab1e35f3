"""Predict, measure, explain: the learner's prediction and measurement, each against the check's own measurement."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, name_of
from residual_course.gradients import signal_profile

UNSET = object()  # the learner's variable this graded cell does not check
MEASUREMENT_TOLERANCE = 0.05  # relative: two fresh random inits of one network measure within about 2% of each other


def _number(value: object, name: str, example: str) -> float:
    """`value` as a finite float, or a FAIL that says what to store."""
    if isinstance(value, Tensor):
        raise PropertyFailed(f"{name} is a tensor: store one finite Python number in it (`.item()` gives one)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PropertyFailed(f"{name} is {value!r}: store one finite number in it, e.g. `{name} = {example}`")
    return float(value)


def prediction_properties(prediction: object, measurement: object, reference: Callable[[], float], *,
                          names: tuple[str, str], what: str, why: str, tolerance: float = 0.1,
                          choices: dict[str, Callable[[float], bool]] | None = None) -> list[Property]:
    """The measurement agrees with the check's own (`reference()`), the prediction with that; UNSET ones are skipped.

    `names` are the learner's two variables. The prediction is a number within `tolerance` (relative) of the
    measurement or, with `choices`, the name of the one choice whose test the measurement passes. `why` explains the
    right answer. A failed measurement never shows the reference, so it cannot be copied from there.
    """
    prediction_name, measurement_name = names

    def measured(device: torch.device) -> None:
        value, expected = _number(measurement, measurement_name, "..."), reference()
        if abs(value / expected - 1) > MEASUREMENT_TOLERANCE:
            raise PropertyFailed(f"{measurement_name} = {value:.4g} is not {what} of this experiment (the check "
                                 f"measured it again and got more than {MEASUREMENT_TOLERANCE:.0%} away): re-read "
                                 "how the exercise defines it, then re-run the experiment's cells from the top")
        print(f"        you measured {value:.4g}")

    def predicted(device: torch.device) -> None:
        value, expected = _number(prediction, prediction_name, "0.5"), reference()
        off = abs(value / expected - 1)
        if off > tolerance:
            raise PropertyFailed(f"you predicted {value:.4g}, the experiment measures {expected:.4g} ({off:.0%} "
                                 f"off, more than {tolerance:.0%}): {why}")
        print(f"        you predicted {value:.4g}, the experiment measures {expected:.4g}: {why}")

    def chosen(device: torch.device) -> None:
        if prediction not in choices:
            raise PropertyFailed(f"{prediction_name} is {prediction!r}: set it to one of "
                                 f"{', '.join(map(repr, choices))}")
        expected = reference()
        measured_choice = next(name for name, holds in choices.items() if holds(expected))
        if prediction != measured_choice:
            raise PropertyFailed(f"you predicted {prediction!r}, the experiment measures {expected:.4g}, i.e. "
                                 f"{measured_choice!r}: {why}")
        print(f"        you predicted {prediction!r}, the experiment measures {expected:.4g}: {why}")

    properties = [
        Property("measured", f"{measurement_name} is {what}, as the experiment measures it", measured),
        Property("predicted", f"{prediction_name} is within {tolerance:.0%} of the measurement", predicted)
        if choices is None else Property("predicted", f"{prediction_name} is what the measurement shows", chosen),
    ]
    given = [value is not UNSET for value in (measurement, prediction)]
    if not any(given):
        raise ValueError("give the prediction, the measurement or both")
    return [prop for prop, is_given in zip(properties, given, strict=True) if is_given]


def check_initial_loss(model_class: Callable[[], nn.Module], images: Tensor, labels: Tensor, *,
                       prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 00: the cross-entropy of an untrained classifier, predicted and measured."""
    def reference() -> float:
        call = f"{name_of(model_class, 'MLP')}()"
        model = build(model_class, device=images.device, call=call)
        with torch.no_grad():
            return F.cross_entropy(model(images), labels).item()

    properties = prediction_properties(
        prediction, measurement, reference, names=("predicted_initial_loss", "initial_loss"),
        what="the mean cross-entropy of an untrained MLP() on the images", tolerance=0.05,
        why="an untrained network's logits are small and alike, so softmax gives each of the 10 classes about 1/10, "
            "and the loss -log p(true class) is about -log(1/10) = log 10 = 2.30 for every image")
    run_properties("the untrained loss", properties)


def signal_decay(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """The geometric-mean factor by which the backward signal shrinks per layer, from the last layer to the first."""
    profile = signal_profile(model, images, labels)
    return (profile[0] / profile[-1]) ** (1 / (len(profile) - 1))


def check_signal_decay(model: nn.Module, images: Tensor, labels: Tensor, *, prediction: object = UNSET,
                       measurement: object = UNSET) -> None:
    """Lesson 01: the per-layer decay of a sigmoid network's backward signal, predicted and measured."""
    properties = prediction_properties(
        prediction, measurement, lambda: signal_decay(model, images, labels),
        names=("predicted_decay", "measured_decay"),
        what="the backward signal's decay per layer, from the last layer to the first", tolerance=0.1,
        why="each layer multiplies the signal by a sigmoid slope, at most 1/4 and near it at this init, and by "
            "W^T, whose gain is sqrt(fan_in) times the weights' standard deviation: sqrt(64) / sqrt(3 * 64) = 0.58")
    run_properties("the decay per layer", properties)


SIGNAL_DIRECTIONS = {  # a factor per layer, from the last layer to the first
    "shrinks": lambda factor: factor < 0.95,
    "stays": lambda factor: 0.95 <= factor <= 1.05,
    "grows": lambda factor: factor > 1.05,
}


def check_signal_growth(model: nn.Module, images: Tensor, labels: Tensor, *, prediction: object = UNSET,
                        measurement: object = UNSET) -> None:
    """Lesson 02: does the backward signal of a deep Kaiming + BatchNorm network shrink, stay or grow toward the
    input? Predicted as a choice, measured as the factor per layer."""
    properties = prediction_properties(
        prediction, measurement, lambda: signal_decay(model.train(), images, labels),
        names=("predicted_direction", "measured_factor"),
        what="the backward signal's factor per layer, from the last layer to the first", choices=SIGNAL_DIRECTIONS,
        why="Kaiming init keeps the signal's size through each Linear + ReLU, and BatchNorm, dividing by the batch's "
            "standard deviation, adds a factor of about sqrt(pi / (pi - 1)) = 1.21 per layer (Yang et al. 2019): "
            "nothing vanishes, the signal grows toward the input")
    run_properties("the signal's direction", properties)


def last_stage_share() -> float:
    """The fraction of torchvision's ResNet-18 parameters that sit in its last stage (512 channels, 7x7 maps)."""
    network = resnet18(weights=None)
    return sum(p.numel() for p in network.layer4.parameters()) / sum(p.numel() for p in network.parameters())


def check_last_stage_share(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 05: the share of ResNet-18's parameters in its last stage, predicted and measured."""
    properties = prediction_properties(
        prediction, measurement, last_stage_share, names=("predicted_share", "measured_share"),
        what="the fraction of ResNet-18's parameters in its last stage (layer4)", tolerance=0.15,
        why="a 3x3 convolution costs 9 * C_in * C_out parameters, so each doubling of the width quadruples a layer's "
            "cost: the 512-channel stage outweighs the three before it together (64, 128, 256 channels: 1 + 4 + 16 "
            "against 64, in those units). Its compute is not larger, though: its maps are 7x7, a quarter of the "
            "previous stage's area, so every stage costs about the same multiply-adds")
    run_properties("where ResNet-18's parameters live", properties)
