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
from torchvision.models import resnet, resnet18, resnext50_32x4d

from residual_course import shattered
from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, name_of, random_tensor, salted_seed
from residual_course.checks.why_shortcuts_work import _reference_autocorrelation  # the exercise's own reference
from residual_course.data import Split
from residual_course.diagnostics import stream_variances
from residual_course.gradients import first_to_last_ratio, signal_profile
from residual_course.models import make_mlp
from residual_course.studies import IDENTITY_BASELINE, identity_error
from residual_course.training import evaluate

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
                          agreement: float = MEASUREMENT_TOLERANCE) -> list[Property]:
    """The measurement agrees with the check's own (`reference()`), the prediction with that; UNSET ones are skipped.

    `names` are the learner's two variables. The prediction is a number within `tolerance` (relative) of the
    measurement: a number, not a choice from a menu, so that the learner commits to a size. The measurement agrees
    with the reference within `agreement` (relative). `why` explains the right answer. A failed measurement never
    shows the reference, so it cannot be copied from there.
    """
    prediction_name, measurement_name = names

    def measured(device: torch.device) -> None:
        value, expected = _number(measurement, measurement_name, "..."), reference()
        if abs(value / expected - 1) > agreement:
            raise PropertyFailed(f"{measurement_name} = {value:.4g} is not {what} of this experiment (the check "
                                 f"measured it again and got more than {agreement:.0%} away): re-read "
                                 "how the exercise defines it, then re-run the experiment's cells from the top")
        print(f"        you measured {value:.4g}")

    def predicted(device: torch.device) -> None:
        value, expected = _number(prediction, prediction_name, "0.5"), reference()
        off = abs(value / expected - 1)
        if off > tolerance:
            raise PropertyFailed(f"you predicted {value:.4g}, the experiment measures {expected:.4g} ({off:.0%} "
                                 f"off, more than {tolerance:.0%}): {why}")
        print(f"        you predicted {value:.4g}, the experiment measures {expected:.4g}: {why}")

    properties = [
        Property("measured", f"{measurement_name} is {what}, as the experiment measures it", measured),
        Property("predicted", f"{prediction_name} is within {tolerance:.0%} of the measurement", predicted),
    ]
    given = [value is not UNSET for value in (measurement, prediction)]
    if not any(given):
        raise ValueError("give the prediction, the measurement or both")
    return [prop for prop, is_given in zip(properties, given, strict=True) if is_given]


@functools.cache
def _exercises() -> dict[str, dict]:
    """Each exercise's variables, wording, tolerance and explanation (predictions.toml, beside this module)."""
    return tomllib.loads((Path(__file__).parent / "predictions.toml").read_text(encoding="utf-8"))


def _check(exercise: str, prediction: object, measurement: object, reference: Callable[[], float]) -> None:
    """Check whichever of the learner's prediction and measurement a graded cell gives for one exercise."""
    spec = dict(_exercises()[exercise])
    title, names = spec.pop("title"), tuple(spec.pop("names"))
    run_properties(title, prediction_properties(prediction, measurement, reference, names=names, **spec))


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


RELU_FACTOR_NETWORKS = 3  # fresh networks the reference averages: one alone is off 1 by up to about 7%


def relu_factor(images: Tensor, labels: Tensor) -> float:
    """The backward signal's factor per layer in fresh 20-layer, 64-wide ReLU MLPs with Kaiming init, weights drawn
    from this run's salt: the geometric mean over RELU_FACTOR_NETWORKS of them, built on the CPU, run on the images'
    device."""
    factors = []
    for index in range(RELU_FACTOR_NETWORKS):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(salted_seed("relu factor", index))
            network = make_mlp(20, 64, activation="relu", init="kaiming", in_features=images[0].numel())
        factors.append(signal_decay(network.to(images.device), images, labels))
    return math.prod(factors) ** (1 / len(factors))


def check_relu_factor(images: Tensor, labels: Tensor, *, prediction: object = UNSET,
                      measurement: object = UNSET) -> None:
    """Lesson 01: the per-layer factor of the backward signal through ReLU layers with Kaiming init, predicted."""
    _check("relu_factor", prediction, measurement, lambda: relu_factor(images, labels))


def copy_ratio(deepen: Callable[[nn.Module, int], nn.Module], shallow: nn.Module, depth: int, data: Split) -> float:
    """Training loss of deepen(shallow, depth), in eval mode on the training subset, over the shallow network's."""
    return evaluate(deepen(shallow, depth), data)[0] / evaluate(shallow, data)[0]


def check_copy_ratio(deepen: Callable[[nn.Module, int], nn.Module], shallow: nn.Module, depth: int, data: Split,
                          *, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 02: the training loss of a deep plain network built from a trained shallow one plus identity units, as
    a multiple of the shallow one's: predicted, then measured with the learner's deepen."""
    _check("copy_ratio", prediction, measurement, lambda: copy_ratio(deepen, shallow, depth, data))


def last_stage_share() -> float:
    """The fraction of torchvision's ResNet-18 parameters that sit in its last stage (512 channels, 7x7 maps)."""
    network = resnet18(weights=None)
    return sum(p.numel() for p in network.layer4.parameters()) / sum(p.numel() for p in network.parameters())


def check_last_stage_share(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 06: the share of ResNet-18's parameters in its last stage, predicted and measured."""
    _check("last_stage_share", prediction, measurement, last_stage_share)


def grouped_share() -> float:
    """The share of the 3x3 (grouped) convolution in the conv weights of a 256-channel ResNeXt-50 (32x4d) block."""
    convs = [m for m in resnext50_32x4d(weights=None).layer1[1].modules() if isinstance(m, nn.Conv2d)]
    return sum(m.weight.numel() for m in convs if m.kernel_size == (3, 3)) / sum(m.weight.numel() for m in convs)


def check_grouped_share(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 08: the grouped 3x3 convolution's share of a ResNeXt block's conv weights, predicted and measured."""
    _check("grouped_share", prediction, measurement, grouped_share)


@functools.cache
def _plain_identity_fraction(make_plain_block: Callable[[int], nn.Module], device: torch.device) -> float:
    """The plain stack's identity error over the baseline, trained once per builder (both cells ask for it)."""
    return identity_error(make_plain_block, device=device) / IDENTITY_BASELINE


def check_identity_prediction(make_plain_block: Callable[[int], nn.Module], device: torch.device, *,
                              prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 03: can a plain stack of 20 layers learn to copy its input in 200 steps? Its error relative to answering
    each feature's mean, predicted and measured."""
    _check("identity_prediction", prediction, measurement, lambda: _plain_identity_fraction(make_plain_block, device))


KEPT_STREAM = (64, 16, 8, 8)  # the exercise's stream: 64 maps of 16 channels, 8x8 each


def kept_fraction(device: torch.device) -> float:
    """The share of x + F(x) that the ReLU after the addition lets through, in a fresh post-activation block
    (torchvision's BasicBlock(16, 16), training mode) fed a stream that has passed a ReLU, as the input of every
    block but the first has: relu of a standard normal. Weights and stream are drawn from this run's salt."""
    with torch.random.fork_rng(devices=[]):  # the block is initialised on the CPU, then moved
        torch.manual_seed(salted_seed("kept fraction"))
        block = resnet.BasicBlock(KEPT_STREAM[1], KEPT_STREAM[1]).to(device)
    stream = torch.relu(random_tensor(device, *KEPT_STREAM, seed=404))
    with torch.no_grad():
        return (block(stream) > 0).float().mean().item()


def check_kept_fraction(device: torch.device, *, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 05: what fraction of the stream does a post-activation block's ReLU after the addition let through at
    initialisation? Predicted and measured as a number."""
    _check("kept_fraction", prediction, measurement, lambda: kept_fraction(device))


def extra_parameters(network_class: Callable[..., nn.Module], blocks_per_stage: int) -> int:
    """What the shortcuts add to lesson 07's network: the residual one's parameters less its plain twin's."""
    def count(residual: bool) -> int:
        call = f"{name_of(network_class, 'CifarStyleNet')}({blocks_per_stage}, residual={residual})"
        return sum(p.numel() for p in build(network_class, blocks_per_stage, residual=residual,
                                            device=torch.device("cpu"), call=call).parameters())

    return count(True) - count(False)


def check_extra_parameters(network_class: Callable[..., nn.Module], blocks_per_stage: int, *,
                           prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 07: how many parameters the projection shortcuts (option B) add, worked out by hand and counted."""
    _check("extra_parameters", prediction, measurement, lambda: float(extra_parameters(network_class,
                                                                                        blocks_per_stage)))


LAG_ONE_NETWORKS = 10  # fresh networks the reference averages: one alone ranges over about ±0.1


@functools.cache  # both of the exercise's cells ask for it; the salt is the process's
def residual_lag_one() -> float:
    """The lag-1 autocorrelation of dy/dx of fresh 50-unit residual scalar networks (lesson 04's, BatchNorm, width
    200, 256 inputs on [-2, 2]), the mean over LAG_ONE_NETWORKS networks drawn from this run's salt."""
    points = shattered.input_points()
    values = []
    for index in range(LAG_ONE_NETWORKS):
        gradient = shattered.derivative(shattered.network(50, True, seed=salted_seed("lag one", index)), points)
        values.append(_reference_autocorrelation(gradient, 1)[1].item())
    return sum(values) / len(values)


def check_residual_lag_one(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 04: how correlated is a 50-unit residual network's gradient from one input to the next? Its lag-1
    autocorrelation, predicted and measured."""
    _check("residual_lag_one", prediction, measurement, residual_lag_one)


GROWTH_NETWORKS = 5  # fresh networks the reference averages: one alone ranges over about ±0.04


@functools.cache
def growth_per_block() -> float:
    """The factor by which the residual stream's variance grows per block, (v_50 / v_0)^(1/50), in fresh 50-unit
    residual scalar networks without normalisation (lesson 04's), the mean over GROWTH_NETWORKS drawn from this
    run's salt."""
    points = shattered.input_points()
    factors = []
    for index in range(GROWTH_NETWORKS):
        network = shattered.network(50, True, "none", seed=salted_seed("growth", index))
        variances = stream_variances(network.running(), network.first(points))
        factors.append((variances[-1] / variances[0]) ** (1 / 50))
    return sum(factors) / len(factors)


def check_growth_per_block(*, prediction: object = UNSET, measurement: object = UNSET) -> None:
    """Lesson 04: by what factor does an unnormalised residual stream's variance grow per block at He
    initialisation? Predicted and measured."""
    _check("growth_per_block", prediction, measurement, growth_per_block)
