"""Predict, measure, explain: right numbers pass; a wrong prediction is explained, a wrong measurement not leaked."""

import math

import pytest
import torch
from fixtures import pytorch_refresher as fx

from residual_course import models
from residual_course.checks import CheckFailed
from residual_course.checks.predictions import (
    check_grouped_share,
    check_identity_prediction,
    check_initial_loss,
    check_last_stage_share,
    check_signal_decay,
    check_signal_growth,
    grouped_share,
    last_stage_share,
    signal_decay,
)
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


def test_a_choice_is_judged_by_what_the_measurement_shows(batch, capsys):
    torch.manual_seed(0)
    network = models.make_mlp(depth=32, width=64, activation="relu", init="kaiming", norm="batch")
    check_signal_growth(network, *batch, prediction="grows")
    assert "PASS" in capsys.readouterr().out
    printed = failed(check_signal_growth, network, *batch, prediction="shrinks", capsys=capsys)
    assert "you predicted 'shrinks', the experiment measures 1.2" in printed and "'grows'" in printed
    printed = failed(check_signal_growth, network, *batch, prediction="vanishes", capsys=capsys)
    assert "set it to one of 'shrinks', 'stays', 'grows'" in printed


def test_the_shares_are_measured_on_torchvisions_networks():
    assert last_stage_share() == pytest.approx(8_393_728 / 11_689_512)
    assert grouped_share() == pytest.approx(4_608 / 70_144)
    check_last_stage_share(prediction=64 / 85, measurement=last_stage_share())
    check_grouped_share(prediction=4_608 / 70_144, measurement=grouped_share())


def test_the_identity_prediction_is_judged_by_the_trained_stack(capsys):
    class ResidualUnit(torch.nn.Module):  # x + Linear(x): it learns the identity quickly
        def __init__(self, width: int):
            super().__init__()
            self.branch = torch.nn.Linear(width, width)

        def forward(self, x):
            return x + self.branch(x)

    fraction = identity_error(ResidualUnit) / IDENTITY_BASELINE
    assert fraction < 0.3 and identity_error(ResidualUnit) == identity_error(ResidualUnit), "seeded"
    check_identity_prediction(ResidualUnit, torch.device("cpu"), prediction="copies it", measurement=fraction)
    printed = failed(check_identity_prediction, ResidualUnit, torch.device("cpu"), prediction="barely beats the mean",
                     capsys=capsys)
    assert "i.e. 'copies it'" in printed


def test_every_prediction_check_has_its_exercise_and_every_exercise_its_check():
    """The wording lives in predictions.toml: a check without an entry, or an entry no check reads, fails here."""
    import tomllib
    from pathlib import Path

    import residual_course.checks.predictions as predictions

    exercises = tomllib.loads((Path(predictions.__file__).parent / "predictions.toml").read_text())
    checks = {name.removeprefix("check_") for name in vars(predictions) if name.startswith("check_")}
    assert set(exercises) == checks
    for name, spec in exercises.items():
        assert {"title", "names", "what", "why"} <= set(spec) <= {"title", "names", "what", "why", "tolerance"}, name
        assert len(spec["names"]) == 2, name
