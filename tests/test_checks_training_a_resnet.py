"""Lesson 07: what the shortcuts cost is counted, and the lesion measurement is the worst deletion over the whole."""

import pytest
import torch
from fixtures import training_a_resnet as fx

from residual_course.checks import CheckFailed
from residual_course.checks.predictions import check_extra_parameters, extra_parameters
from residual_course.checks.training_a_resnet import check_accuracy_kept

CPU = torch.device("cpu")


def test_the_projections_cost_2752_parameters_at_every_depth():
    assert extra_parameters(fx.CifarStyleNet, 3) == extra_parameters(fx.CifarStyleNet, 1) == 2752


def test_the_right_count_passes_and_a_count_without_the_batchnorms_is_explained(capsys):
    check_extra_parameters(fx.CifarStyleNet, 3, prediction=2752, measurement=2752.0)
    with pytest.raises(CheckFailed):
        check_extra_parameters(fx.CifarStyleNet, 3, prediction=16 * 32 + 32 * 64)
    assert "you predicted 2560" in capsys.readouterr().out


def test_a_whole_network_count_is_not_the_measurement(capsys):
    with pytest.raises(CheckFailed):
        check_extra_parameters(fx.CifarStyleNet, 3, measurement=272_474.0)
    assert "2752" not in capsys.readouterr().out  # a wrong measurement is never told the answer


def test_the_worst_deletion_over_the_whole_passes(capsys):
    check_accuracy_kept(fx.accuracy_kept)
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "hint"), [(fx.accuracy_kept_average, "average"),
                                             (fx.accuracy_kept_unnormalised, "divide it"),
                                             (fx.accuracy_kept_in_place, "changed the blocks")])
def test_each_wrong_measurement_fails_with_its_hint(wrong, hint, capsys):
    with pytest.raises(CheckFailed):
        check_accuracy_kept(wrong)
    assert hint in capsys.readouterr().out
