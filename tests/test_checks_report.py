"""What every check shares (checks/report.py): PASS/FAIL lines, sentences for learners' errors, no traceback."""

import pytest
import torch
from fixtures.residual_blocks import TextbookBasicBlock
from torch import nn

from residual_course.checks import CheckFailed, check_basic_block
from residual_course.checks.report import Property, PropertyFailed, describe_error, run_properties


def test_unfinished_exercise_is_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self, *args):
            raise NotImplementedError()

    with pytest.raises(CheckFailed, match="Stub is not implemented yet"):
        check_basic_block(Stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_check_names_the_device_it_ran_on(capsys):
    check_basic_block(TextbookBasicBlock, only="identity")
    expected = "cuda" if torch.cuda.is_available() else "cpu (no GPU found)"
    assert f"on {expected}" in capsys.readouterr().out


def test_unknown_property_key_is_refused():
    with pytest.raises(ValueError, match="choose from"):
        check_basic_block(TextbookBasicBlock, only="relu before add")


def test_report_turns_learner_errors_into_sentences(capsys):
    def broken(device):
        raise KeyError("conv3")

    def fine(device):
        pass

    with pytest.raises(CheckFailed, match="1 of 2 properties of thing failed: broken"):
        run_properties("thing", [Property("broken", "breaks", broken), Property("fine", "works", fine)])
    printed = capsys.readouterr().out
    assert "FAIL  breaks\n        your code raised KeyError: 'conv3'" in printed
    assert "PASS  works" in printed


def test_check_failure_shows_no_traceback_in_jupyter():
    rendered = CheckFailed("1 of 1 properties of X failed: y")._render_traceback_()
    assert rendered == ["CheckFailed: 1 of 1 properties of X failed: y"]


def test_describe_error_points_at_the_learners_line():
    def learner_code():
        return torch.zeros(2) + torch.zeros(3)

    try:
        learner_code()
    except RuntimeError as error:
        sentence = describe_error(error)
    assert sentence.startswith("your code raised RuntimeError")
    assert "torch.zeros(2) + torch.zeros(3)" in sentence
    assert PropertyFailed.__mro__[1] is Exception
