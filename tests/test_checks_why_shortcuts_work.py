"""Lesson 04's checks: correct autocorrelations, directions and path gradients in any style pass; each mistake fails
with its hint; and the lesson's two predictions accept the right numbers and refuse wrong ones."""

import pytest
import torch
from fixtures import why_shortcuts_work as fx

from residual_course.checks.predictions import (
    check_growth_per_block,
    check_residual_lag_one,
    growth_per_block,
    residual_lag_one,
)
from residual_course.checks.report import CheckFailed
from residual_course.checks.why_shortcuts_work import (
    check_autocorrelation,
    check_filter_direction,
    check_path_gradient,
)


def failing(check, subject, capsys, **kwargs) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject, **kwargs)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("function", [fx.autocorrelation_by_loop, fx.autocorrelation_by_numpy,
                                      fx.autocorrelation_by_fft])
def test_correct_autocorrelations_in_any_style_pass(function, capsys):
    check_autocorrelation(function)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (fx.autocorrelation_without_mean, {"definition"}, "the mean is not subtracted"),
    (fx.autocorrelation_per_lag_count, {"definition"}, "divided by its own number of pairs"),
    (fx.autocorrelation_shifted, {"shape", "definition"}, "at lag 0 a signal is perfectly correlated"),
    (fx.autocorrelation_in_place, {"shape", "definition"}, "changed g itself"),
    (fx.autocorrelation_too_short, {"shape", "definition"}, "from 0 to max_lag"),
    (fx.autocovariance, {"shape", "definition"}, "r_0 = 1"),
])
def test_each_autocorrelation_mistake_fails_with_its_hint(function, broken, hint, capsys):
    keys, printed = failing(check_autocorrelation, function, capsys)
    assert keys == broken
    assert hint in printed


def test_shifted_lags_are_named_as_such(capsys):
    _, printed = failing(check_autocorrelation, fx.autocorrelation_shifted, capsys, only="definition")
    assert "shifted by one" in printed


@pytest.mark.parametrize("function", [fx.direction_vectorised, fx.direction_by_filter_loop])
def test_correct_directions_in_any_style_pass(function, capsys):
    check_filter_direction(function)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (fx.direction_whole_tensor, {"filter norms"}, "each filter must have its own filter's"),
    (fx.direction_unit_filters, {"filter norms"}, "every filter has norm 1"),
    (fx.direction_with_biases, {"zero for biases and norms"}, "torch.zeros_like(p)"),
    (fx.direction_fixed_seed, {"random"}, "two calls gave the same direction"),
    (fx.direction_along_weights, {"random"}, "point along the weights' own"),
    (fx.direction_moves_weights, {"shapes", "zero for biases and norms", "filter norms", "random"},
     "changed the model's weights"),
    (fx.direction_weights_only, {"shapes", "zero for biases and norms", "filter norms", "random"},
     "one per parameter, biases and BatchNorm's included"),
])
def test_each_direction_mistake_fails_with_its_hint(function, broken, hint, capsys):
    keys, printed = failing(check_filter_direction, function, capsys)
    assert keys == broken
    assert hint in printed


@pytest.mark.parametrize("function", [fx.path_gradient_detached, fx.path_gradient_backwards])
def test_correct_path_gradients_in_any_style_pass(function, capsys):
    check_path_gradient(function)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (fx.path_gradient_with_subpaths, {"one path", "sum of paths"}, "the gradient also took the shortcut"),
    # reversing every path maps the 2^B paths onto themselves: their sum is still right
    (fx.path_gradient_reversed, {"one path"}, "blocks are counted from the input"),
    (fx.path_gradient_full, {"shortcuts only", "one path", "sum of paths"}, "every path at once"),
    (fx.path_gradient_without_masks, {"shortcuts only", "one path", "sum of paths"}, "relu(h + F(h)) forward"),
])
def test_each_path_gradient_mistake_fails_with_its_hint(function, broken, hint, capsys):
    keys, printed = failing(check_path_gradient, function, capsys)
    assert keys == broken
    assert hint in printed


def test_unfinished_exercise_is_reported_as_not_implemented(capsys):
    def stub(g, max_lag):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="is not implemented yet"):
        check_autocorrelation(stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1


def test_the_lag_one_prediction_takes_the_number_the_argument_gives_and_refuses_white_noise(capsys):
    measured = residual_lag_one()
    assert 0.45 < measured < 0.8
    check_residual_lag_one(prediction=measured * 1.1, measurement=measured * 0.95)
    with pytest.raises(CheckFailed):
        check_residual_lag_one(prediction=0.05)  # "as shattered as the plain network"
    assert "1/sqrt(depth)" in capsys.readouterr().out


def test_the_growth_prediction_takes_two_and_refuses_one():
    assert 1.8 < growth_per_block() < 2.0
    check_growth_per_block(prediction=2.0, measurement=growth_per_block())
    with pytest.raises(CheckFailed):
        check_growth_per_block(prediction=1.0)  # "the shortcut keeps the variance"
    with pytest.raises(CheckFailed):
        check_growth_per_block(measurement=growth_per_block() ** 50)  # the whole growth, not per block


@pytest.mark.parametrize("value", [torch.tensor(2.0), "2", float("nan")])
def test_a_prediction_that_is_not_a_number_says_what_to_store(value, capsys):
    with pytest.raises(CheckFailed):
        check_growth_per_block(prediction=value)
    assert "store one finite" in capsys.readouterr().out
