"""Predict, measure, explain: right numbers pass; a wrong prediction is explained, a wrong measurement not leaked."""

import math

import pytest
import torch
from fixtures import pytorch_refresher as fx
from torchvision.models import resnet as torchvision_resnet

from residual_course import models
from residual_course.checks import CheckFailed
from residual_course.checks.predictions import (
    check_copy_ratio,
    check_grouped_share,
    check_identity_prediction,
    check_initial_loss,
    check_kept_fraction,
    check_last_stage_share,
    check_relu_factor,
    check_signal_decay,
    copy_ratio,
    grouped_share,
    kept_fraction,
    last_stage_share,
    relu_factor,
    signal_decay,
)
from residual_course.data import Split
from residual_course.gradients import signal_profile
from residual_course.studies import IDENTITY_BASELINE, identity_error


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 28, 28, generator=generator), torch.randint(0, 10, (64,), generator=generator)


@pytest.fixture(scope="module")
def sigmoid_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.make_mlp(depth=20, width=64, activation="sigmoid")


def learner_loss(images, labels) -> float:
    """What a learner measures: a fresh MLP of their own (another random start), mean cross-entropy."""
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(fx.SequentialMLP()(images), labels).item()


def failed(check, *args, capsys, **kwargs) -> str:
    with pytest.raises(CheckFailed):
        check(*args, **kwargs)
    return capsys.readouterr().out


def test_the_right_prediction_and_measurement_pass(batch, sigmoid_net, capsys):
    images, labels = batch
    check_initial_loss(fx.SequentialMLP, images, labels, prediction=math.log(10), measurement=learner_loss(*batch))
    profile = signal_profile(sigmoid_net, images, labels)
    measured = (profile[0] / profile[-1]) ** (1 / 19)
    check_signal_decay(sigmoid_net, images, labels, prediction=0.25 / 3**0.5, measurement=measured)
    printed = capsys.readouterr().out
    assert "FAIL" not in printed and printed.count("PASS") == 4
    assert "you predicted 2.303" in printed, "a PASS says what the learner got right"


@pytest.mark.parametrize(("prediction", "hint"), [(0.1, "log 10 = 2.30"), (0.0, "-log(1/10)")])
def test_a_wrong_prediction_fails_with_the_measured_number_and_why(batch, prediction, hint, capsys):
    printed = failed(check_initial_loss, fx.SequentialMLP, *batch, prediction=prediction, capsys=capsys)
    assert f"you predicted {prediction:.4g}, the experiment measures 2.3" in printed and hint in printed


def test_the_slopes_without_the_weights_gain_is_a_wrong_prediction(batch, sigmoid_net, capsys):
    printed = failed(check_signal_decay, sigmoid_net, *batch, prediction=0.25, capsys=capsys)
    assert "you predicted 0.25" in printed and "gain" in printed


def test_the_relu_factor_is_one_and_a_halved_norm_or_a_forgotten_mask_is_explained(batch, capsys):
    images, labels = batch
    assert relu_factor(images, labels) == pytest.approx(1, abs=0.07)
    assert relu_factor(images, labels) == relu_factor(images, labels), "one run's salt draws the same networks"
    check_relu_factor(images, labels, prediction=1.0)
    assert "you predicted 1," in capsys.readouterr().out
    for wrong in (2**0.5 * 0.5, 2**0.5):
        printed = failed(check_relu_factor, images, labels, prediction=wrong, capsys=capsys)
        assert f"you predicted {wrong:.4g}" in printed and "sqrt(1/2), not by 1/2" in printed


def test_a_wrong_measurement_fails_without_giving_the_reference_away(batch, sigmoid_net, capsys):
    images, labels = batch
    profile = signal_profile(sigmoid_net, images, labels)
    one_too_many = (profile[0] / profile[-1]) ** (1 / 20)
    printed = failed(check_signal_decay, sigmoid_net, images, labels, measurement=one_too_many, capsys=capsys)
    assert "is not the backward signal's decay per layer" in printed
    assert f"{signal_decay(sigmoid_net, images, labels):.4g}" not in printed
    summed = 64 * learner_loss(*batch)
    printed = failed(check_initial_loss, fx.SequentialMLP, images, labels, measurement=summed, capsys=capsys)
    assert "initial_loss = " in printed and "2.3" not in printed


@pytest.mark.parametrize("value", [None, "2.3", float("nan"), True])
def test_anything_but_one_finite_number_is_refused(batch, value, capsys):
    printed = failed(check_initial_loss, fx.SequentialMLP, *batch, prediction=value, capsys=capsys)
    assert "store one finite number in it" in printed


def test_a_tensor_is_refused_with_how_to_get_a_number(batch, capsys):
    printed = failed(check_initial_loss, fx.SequentialMLP, *batch, measurement=torch.tensor(2.3), capsys=capsys)
    assert "initial_loss is a tensor" in printed and ".item()" in printed


def test_a_cell_checks_only_what_it_is_given(batch, capsys):
    check_initial_loss(fx.SequentialMLP, *batch, prediction=2.3)
    printed = capsys.readouterr().out
    assert printed.count("PASS") == 1 and "you measured" not in printed
    with pytest.raises(ValueError, match="give the prediction, the measurement or both"):
        check_initial_loss(fx.SequentialMLP, *batch)


def test_the_copied_network_is_judged_by_the_learners_own_deepen(capsys):
    from fixtures.degradation import deepen_reference

    torch.manual_seed(0)
    shallow = models.make_mlp(depth=3, width=16, activation="relu", init="kaiming", norm="batch").eval()
    split = Split(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    assert copy_ratio(deepen_reference, shallow, 7, split) == pytest.approx(1.0, abs=1e-5)
    check_copy_ratio(deepen_reference, shallow, 7, split, prediction=1.0, measurement=1.0)
    printed = failed(check_copy_ratio, deepen_reference, shallow, 7, split, prediction=0.5, capsys=capsys)
    assert "you predicted 0.5, the experiment measures 1" in printed and "identity units change nothing" in printed


def test_the_shares_are_measured_on_torchvisions_networks():
    assert last_stage_share() == pytest.approx(8_393_728 / 11_689_512)
    assert grouped_share() == pytest.approx(4_608 / 70_144)
    check_last_stage_share(prediction=64 / 85, measurement=last_stage_share())
    check_grouped_share(prediction=4_608 / 70_144, measurement=grouped_share())


def learner_kept_fraction(stream: torch.Tensor) -> float:
    """What a learner measures: a fresh BasicBlock of their own drawing, the share of its output above zero."""
    block = torchvision_resnet.BasicBlock(16, 16)
    with torch.no_grad():
        return (block(stream) > 0).float().mean().item()


def test_the_kept_fraction_is_five_eighths_measured_on_a_stream_after_a_relu(capsys):
    cpu = torch.device("cpu")
    assert kept_fraction(cpu) == pytest.approx(5 / 8, abs=0.02) and kept_fraction(cpu) == kept_fraction(cpu)
    torch.manual_seed(0)
    measured = learner_kept_fraction(torch.relu(torch.randn(64, 16, 8, 8)))
    check_kept_fraction(cpu, prediction=5 / 8, measurement=measured)
    assert "you predicted 0.625" in capsys.readouterr().out


@pytest.mark.parametrize("prediction", [0.5, 0.75])
def test_a_centred_guess_or_only_the_zeros_clipped_is_explained(prediction, capsys):
    printed = failed(check_kept_fraction, torch.device("cpu"), prediction=prediction, capsys=capsys)
    assert f"you predicted {prediction:.4g}" in printed and "5/8" in printed


@pytest.mark.parametrize("stream", ["no relu", "zeroed share"])
def test_a_stream_without_its_relu_or_the_zeroed_share_is_not_the_measurement(stream, capsys):
    torch.manual_seed(1)
    noise = torch.randn(64, 16, 8, 8)
    kept = learner_kept_fraction(noise if stream == "no relu" else torch.relu(noise))
    measured = kept if stream == "no relu" else 1 - kept
    printed = failed(check_kept_fraction, torch.device("cpu"), measurement=measured, capsys=capsys)
    assert "is not the fraction of a fresh tv.BasicBlock(16, 16)'s output numbers above zero" in printed
    assert f"{kept_fraction(torch.device('cpu')):.4g}" not in printed


def test_the_identity_prediction_is_judged_by_the_trained_stack(capsys):
    class ResidualUnit(torch.nn.Module):  # x + Linear(x): it learns the identity quickly
        def __init__(self, width: int):
            super().__init__()
            self.branch = torch.nn.Linear(width, width)

        def forward(self, x):
            return x + self.branch(x)

    fraction = identity_error(ResidualUnit) / IDENTITY_BASELINE
    assert fraction < 0.3 and identity_error(ResidualUnit) == identity_error(ResidualUnit), "seeded"
    check_identity_prediction(ResidualUnit, torch.device("cpu"), prediction=fraction * 1.1, measurement=fraction)
    printed = failed(check_identity_prediction, ResidualUnit, torch.device("cpu"), prediction=0.9, capsys=capsys)
    assert f"the experiment measures {fraction:.4g}" in printed


def test_every_prediction_check_has_its_exercise_and_every_exercise_its_check():
    """The wording lives in predictions.toml: a check without an entry, or an entry no check reads, fails here."""
    import tomllib
    from pathlib import Path

    import residual_course.checks.predictions as predictions

    exercises = tomllib.loads((Path(predictions.__file__).parent / "predictions.toml").read_text())
    checks = {name.removeprefix("check_") for name in vars(predictions) if name.startswith("check_")}
    assert set(exercises) == checks
    for name, spec in exercises.items():
        required = {"title", "names", "what", "why"}
        assert required <= set(spec) <= required | {"tolerance", "agreement"}, name
        assert len(spec["names"]) == 2, name
