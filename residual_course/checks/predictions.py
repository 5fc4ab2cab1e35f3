"""Predict, measure, explain: the learner's prediction and measurement, each against the check's own measurement.

Each exercise's wording (its two variables, what they hold, the tolerance, the explanation) is data, in
predictions.toml beside this module; the code here measures and decides.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18, resnext50_32x4d

from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, name_of
from residual_course.gradients import first_to_last_ratio, signal_profile, stack_gradient_ratio
from residual_course.studies import IDENTITY_BASELINE, identity_error

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


@functools.cache
def _exercises() -> dict[str, dict]:
    """Each exercise's variables, wording, tolerance and explanation (predictions.toml, beside this module)."""
    return tomllib.loads((Path(__file__).parent / "predictions.toml").read_text(encoding="utf-8"))


def _check(exercise: str, prediction: object, measurement: object, reference: Callable[[], float],
           choices: dict[str, Callable[[float], bool]] | None = None) -> None:
    """Check whichever of the learner's prediction and measurement a graded cell gives for one exercise."""
    spec = dict(_exercises()[exercise])
    title, names = spec.pop("title"), tuple(spec.pop("names"))
    run_properties(title, prediction_properties(prediction, measurement, reference, names=names, choices=choices,
                                                **spec))


def check_initial_loss(model_class: Callable[[], nn.Module], images: Tensor, labels: Tensor, *,
                       prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 00: the cross-entropy of an untrained classifier, predicted and measured."""
    def reference() -> float:
        call = f"{name_of(model_class, 'MLP')}()"
        model = build(model_class, device=images.device, call=call)
        with torch.no_grad():
            return F.cross_entropy(model(images), labels).item()

    _check("initial_loss", prediction, measurement, reference)


def signal_decay(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """The geometric-mean factor by which the backward signal shrinks per layer, from the last layer to the first."""
    profile = signal_profile(model, images, labels)
    return first_to_last_ratio(profile) ** (1 / (len(profile) - 1))


def check_signal_decay(model: nn.Module, images: Tensor, labels: Tensor, *, prediction: object = UNSET,
                       measurement: object = UNSET) -> None:
    """Lesson 01: the per-layer decay of a sigmoid network's backward signal, predicted and measured."""
    _check("signal_decay", prediction, measurement, lambda: signal_decay(model, images, labels))


SIGNAL_DIRECTIONS = {  # a factor per layer, from the last layer to the first
    "shrinks": lambda factor: factor < 0.95,
    "stays": lambda factor: 0.95 <= factor <= 1.05,
    "grows": lambda factor: factor > 1.05,
}


def check_signal_growth(model: nn.Module, images: Tensor, labels: Tensor, *, prediction: object = UNSET,
                        measurement: object = UNSET) -> None:
    """Lesson 02: does the backward signal of a deep Kaiming + BatchNorm network shrink, stay or grow toward the
    input? Predicted as a choice, measured as the factor per layer."""
    _check("signal_growth", prediction, measurement, lambda: signal_decay(model.train(), images, labels),
           choices=SIGNAL_DIRECTIONS)


def last_stage_share() -> float:
    """The fraction of torchvision's ResNet-18 parameters that sit in its last stage (512 channels, 7x7 maps)."""
    network = resnet18(weights=None)
    return sum(p.numel() for p in network.layer4.parameters()) / sum(p.numel() for p in network.parameters())


def check_last_stage_share(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 05: the share of ResNet-18's parameters in its last stage, predicted and measured."""
    _check("last_stage_share", prediction, measurement, last_stage_share)


def grouped_share() -> float:
    """The share of the 3x3 (grouped) convolution in the conv weights of a 256-channel ResNeXt-50 (32x4d) block."""
    convs = [m for m in resnext50_32x4d(weights=None).layer1[1].modules() if isinstance(m, nn.Conv2d)]
    return sum(m.weight.numel() for m in convs if m.kernel_size == (3, 3)) / sum(m.weight.numel() for m in convs)


def check_grouped_share(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 07: the grouped 3x3 convolution's share of a ResNeXt block's conv weights, predicted and measured."""
    _check("grouped_share", prediction, measurement, grouped_share)


IDENTITY_OUTCOMES = {  # the plain stack's error, as a fraction of the error of answering each feature's mean
    "copies it": lambda fraction: fraction < 0.3,
    "partly": lambda fraction: 0.3 <= fraction <= 0.8,
    "barely beats the mean": lambda fraction: fraction > 0.8,
}


@functools.cache
def _plain_identity_fraction(make_plain_block: Callable[[int], nn.Module], device: torch.device) -> float:
    """The plain stack's identity error over the baseline, trained once per builder (both cells ask for it)."""
    return identity_error(make_plain_block, device=device) / IDENTITY_BASELINE


def check_identity_prediction(make_plain_block: Callable[[int], nn.Module], device: torch.device, *,
                              prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 03: can a plain stack of 20 layers learn to copy its input in 200 steps? Predicted as a choice,
    measured as its error relative to answering the mean."""
    _check("identity_prediction", prediction, measurement, lambda: _plain_identity_fraction(make_plain_block, device),
           choices=IDENTITY_OUTCOMES)


STACK_OUTCOMES = {  # the first conv's weight-gradient norm over the last conv's
    "smaller": lambda ratio: ratio < 0.5,
    "about the same": lambda ratio: 0.5 <= ratio <= 2,
    "larger": lambda ratio: ratio > 2,
}


def check_plain_stack_prediction(make_plain_block: Callable[[int, int], nn.Module], device: torch.device, *,
                                 prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 04: in a stack of 30 plain conv-BN-ReLU blocks, is the first conv's gradient smaller, about the same
    or larger than the last's? Predicted as a choice, measured as the ratio."""
    _check("plain_stack_prediction", prediction, measurement,
           lambda: stack_gradient_ratio(make_plain_block, device=device), choices=STACK_OUTCOMES)
