"""Lesson 02's checks: plain networks and diagnoses in any correct style pass; each typical mistake fails its hint."""

import pytest
from fixtures import degradation as fx

from residual_course.checks import CheckFailed
from residual_course.checks.degradation import (
    check_deepen,
    check_diagnose,
    check_plain_mlp,
    kaiming_std,
    synthetic_history,
)


def failing(check, subject, capsys) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("builder", [fx.plain_mlp_sequential, fx.PlainMLP])
def test_correct_plain_networks_in_other_styles_pass(builder, capsys):
    check_plain_mlp(builder)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("builder", "broken", "hint"), [
    (fx.no_batchnorm, {"units"}, "runs no nn.BatchNorm1d"),
    (fx.relu_before_batchnorm, {"units"}, "Linear -> BatchNorm1d -> ReLU"),
    (fx.default_init, {"init"}, "PyTorch's default init"),
    (fx.fan_out_init, {"init"}, "mode='fan_in'"),
    (fx.one_layer_too_many, {"depth"}, "the output layer included"),
    (fx.with_skips, {"no skip"}, "some path skips that layer"),  # x + relu(bn(linear(x))): only the skip is wrong
])
def test_each_plain_network_mistake_fails_its_property_with_a_hint(builder, broken, hint, capsys):
    keys, printed = failing(check_plain_mlp, builder, capsys)
    assert keys == broken
    assert hint in printed


def test_kaiming_std():
    assert kaiming_std(2) == 1.0
    assert abs(kaiming_std(784) - 0.0505) < 1e-4


@pytest.mark.parametrize("function", [fx.diagnose_seeds_reference, fx.diagnose_seeds_by_mean])
def test_diagnoses_that_weigh_every_seed_pass(function, capsys):
    check_diagnose(function)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (fx.diagnose_first_seed_only, {"seeds"}, "expected 'too close to call'"),
    (fx.diagnose_by_test_loss, {"decided"}, "training loss first"),
])
def test_diagnosis_mistakes_fail_with_the_rule(function, broken, hint, capsys):
    keys, printed = failing(check_diagnose, function, capsys)
    assert keys == broken
    assert hint in printed


def test_a_deepened_network_that_computes_the_same_function_passes(capsys):
    check_deepen(fx.deepen_reference)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (fx.deepen_default_norms, {"same function"}, "gamma = sqrt(1 + eps)"),
    (fx.deepen_random_units, {"same function"}, "each inserted unit must pass its input through unchanged"),
    (fx.deepen_in_place, {"depth", "same function"}, "copy its layers"),
])
def test_each_deepen_mistake_fails_its_property_with_a_hint(function, broken, hint, capsys):
    keys, printed = failing(check_deepen, function, capsys)
    assert keys == broken
    assert hint in printed


def test_synthetic_history_fills_accuracies_from_losses():
    history = synthetic_history([1.0, 0.5], [1.2, 0.7])
    assert history.train_loss == [1.0, 0.5] and len(history.train_accuracy) == 2
    assert history.test_accuracy[-1] > history.test_accuracy[0]


def test_unfinished_exercises_are_reported_as_not_implemented(capsys):
    def stub(*args):
        raise NotImplementedError()

    for check in (check_plain_mlp, check_diagnose, check_deepen):
        with pytest.raises(CheckFailed, match="is not implemented yet"):
            check(stub)
        assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property
