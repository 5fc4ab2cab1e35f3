"""What every check shares (checks/report.py): PASS/FAIL lines, sentences for learners' errors, no traceback."""

import pytest
import torch
from fixtures.residual_blocks import TextbookBasicBlock
from torch import nn

from residual_course.checks import CheckFailed, check_basic_block
from residual_course.checks.report import Check, Property, PropertyFailed, describe_error, run_properties


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


def counting_check() -> tuple[Check, list]:
    """A check of two properties that record what they were given: the subject, and the options they name."""
    seen = []
    check = Check("thing", "Check a thing.", size=3, scale=1.0)

    @check.property("size", "uses the size")
    def _size(subject, device, size):
        seen.append(("size", subject, size))

    @check.property("plain", "takes no option")
    def _plain(subject, device):
        seen.append(("plain", subject))
        if subject == "broken":
            raise PropertyFailed("it broke")

    return check, seen


def test_a_check_runs_its_declared_properties_in_order_with_the_options_each_names(capsys):
    check, seen = counting_check()
    assert check.keys() == ["size", "plain"] and check.__doc__ == "Check a thing."
    check("mine", size=5)
    assert seen == [("size", "mine", 5), ("plain", "mine")]
    check("mine", only="size")
    assert seen[-1] == ("size", "mine", 3)  # the default, filled in
    assert "Checking thing on" in capsys.readouterr().out  # a subject without __name__ goes by the check's name
    with pytest.raises(CheckFailed, match="1 of 2 properties of thing failed: plain"):
        check("broken")


def test_a_check_refuses_an_unknown_option_and_a_key_or_option_declared_wrongly():
    check, _ = counting_check()
    with pytest.raises(TypeError, match="no option sise; its options are size, scale"):
        check("mine", sise=5)
    with pytest.raises(ValueError, match="declared twice"):
        check.property("size", "again")(lambda subject, device: None)
    with pytest.raises(ValueError, match="takes options the check does not have"):
        check.property("width", "needs a width")(lambda subject, device, width: None)


def test_a_derived_value_lets_one_test_serve_checks_whose_options_differ():
    seen = []

    def _shape(subject, device, shape):
        seen.append((subject, shape))

    square = Check("square", "Check a square.", derived={"shape": lambda side: (side, side)}, side=2)
    wide = Check("wide", "Check a wide one.", derived={"shape": lambda height: (height, 4 * height)}, height=1)
    square.property("shape", "has the shape")(_shape)
    wide.property("shape", "has the shape")(_shape)
    square("a", side=3)
    wide("b")
    assert seen == [("a", (3, 3)), ("b", (1, 4))]
    with pytest.raises(TypeError, match="no option shape"):
        square("a", shape=(1, 1))  # derived, never set directly


def test_a_check_names_the_subject_and_its_options_in_its_title_and_descriptions(capsys):
    seen = []
    check = Check("thing", "Check a thing.", title="the size of {name}", size=3, scale=1.0)
    check.property("size", "is at most {size:,} wide")(lambda subject, device, size, scale: seen.append((size, scale)))

    def Widget():  # noqa: N802 - a learner's class, by name
        pass

    check(Widget, "size", size=4000)
    check(Widget, size=5, scale=2.0)
    assert seen == [(4000, 1.0), (5, 2.0)]
    printed = capsys.readouterr().out
    assert "Checking the size of Widget on" in printed and "is at most 4,000 wide" in printed
