"""Lesson 09's checks: residual models in any style pass; over-budget, softmax and shortcut-free models fail; the
ablation is graded for being the same network, for its numbers, and for whether the design needs its shortcuts."""

import pytest
import torch
from fixtures.capstone import (
    DenseNet,
    DoublingNet,
    GatedNet,
    InlineResNet,
    ParallelBranchesNet,
    PlainNet,
    PreActResNet,
    ProjectionOnlyResNet,
    ReluBeforeAddResNet,
    SmallResNet,
    SoftmaxResNet,
    TorchvisionResNet,
    WideResNet,
)
from torch import nn

from residual_course import grading_policy
from residual_course.checks.capstone import (
    ABLATION_OUTCOMES,
    check_ablation,
    check_ablation_prediction,
    check_capstone,
    check_validation_accuracy,
)
from residual_course.checks.report import CheckFailed
from residual_course.data import load_dataset
from residual_course.formulas import count_parameters
from residual_course.grading_policy import GRADING_RECIPE, Bands, grading_ablation, grading_accuracy, grading_bands
from residual_course.training import History


def failing(subject, capsys, **kwargs) -> tuple[set[str], str]:
    """Run the check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check_capstone(subject, **kwargs)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("model", [SmallResNet, InlineResNet, PreActResNet, ReluBeforeAddResNet])
def test_residual_models_in_other_styles_pass(model, capsys):
    check_capstone(model)
    assert "FAIL" not in capsys.readouterr().out


def test_torchvision_blocks_are_refused_as_ready_made(capsys):
    keys, printed = failing(TorchvisionResNet, capsys, budget=10**7)
    assert keys == {"output", "logits", "budget", "device", "shortcut"}
    assert "built from torchvision.models.resnet.BasicBlock, ready-made" in printed


@pytest.mark.parametrize(("model", "broken", "hint"), [
    (PlainNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (ProjectionOnlyResNet, {"shortcut"}, "a projection shortcut alone"),
    (DenseNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (ParallelBranchesNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (GatedNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (DoublingNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (WideResNet, {"budget"}, "73,842 over the budget of 100,000"),
    (SoftmaxResNet, {"logits"}, "returns probabilities"),
])
def test_each_mistake_fails_its_own_property_with_a_hint(model, broken, hint, capsys):
    keys, printed = failing(model, capsys)
    assert keys == broken
    assert hint in printed


def test_wrong_output_shape_is_named(capsys):
    class Flat(SmallResNet):
        def forward(self, x):
            return super().forward(x)[:, :5]

    keys, printed = failing(Flat, capsys)
    assert keys == {"output", "logits", "device", "shortcut"}
    assert "expected (2, 10)" in printed


def test_unfinished_model_is_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self):
            raise NotImplementedError()

    with pytest.raises(CheckFailed, match="is not implemented yet"):
        check_capstone(Stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_the_budget_line_names_the_budget_it_checks(capsys):
    check_capstone(SmallResNet, only="budget", budget=80_000)
    assert "PASS  at most 80,000 trainable parameters" in capsys.readouterr().out
    keys, printed = failing(SmallResNet, capsys, only="budget", budget=50_000)
    assert keys == {"budget"} and "FAIL  at most 50,000 trainable parameters" in printed


def test_budget_counts_trainable_parameters_only():
    assert count_parameters(SmallResNet()) == 77_754
    frozen = SmallResNet()
    frozen.head.requires_grad_(False)
    assert count_parameters(frozen) == 77_754 - 650


def test_grading_is_repeatable_and_ignores_the_learners_seed():
    data = load_dataset("fashion-mnist", train_size=512, test_size=256)
    recipe = {**GRADING_RECIPE}
    first = grading_accuracy(SmallResNet, data)
    torch.manual_seed(123)
    assert grading_accuracy(SmallResNet, data) == first
    assert GRADING_RECIPE == recipe
    assert not torch.backends.cudnn.deterministic, "grading must restore cuDNN's settings"


class AblatableResNet(SmallResNet):
    """Right: MyResNet(shortcuts=False) is the same network, each block returning relu(F(x))."""

    def __init__(self, shortcuts: bool = True):
        super().__init__(skip=shortcuts)


class IgnoresItsArgument(SmallResNet):
    """Wrong: the argument is accepted and never used, so the ablation keeps every shortcut."""

    def __init__(self, shortcuts: bool = True):
        super().__init__()


class NarrowerWithoutShortcuts(SmallResNet):
    """Wrong: the ablation also changes the widths, so it is another network."""

    def __init__(self, shortcuts: bool = True):
        super().__init__(widths=(16, 32, 64) if shortcuts else (16, 32, 48), skip=shortcuts)


class ZeroInitEvenWithoutShortcuts(SmallResNet):
    """Wrong: each branch's last gamma zeroed in the ablation too, so MyResNet(shortcuts=False) starts dead."""

    def __init__(self, shortcuts: bool = True):
        super().__init__(skip=shortcuts)
        for block in self.features:
            if hasattr(block, "branch"):
                nn.init.zeros_(block.branch[-1].weight)


def ablation_failing(capsys, *args, **kwargs) -> tuple[set[str], str]:
    with pytest.raises(CheckFailed) as failure:
        check_ablation(*args, **kwargs)
    return set(str(failure.value).split(": ", 1)[1].split(", ")), capsys.readouterr().out


def test_an_ablation_that_removes_only_the_shortcuts_passes(capsys):
    check_ablation(AblatableResNet, only="removed")
    assert "FAIL" not in capsys.readouterr().out


def test_the_ablation_check_names_the_model_and_takes_its_options_by_name(capsys):
    check_ablation(AblatableResNet, only="removed")
    printed = capsys.readouterr().out
    assert printed.startswith("Checking the ablation of AblatableResNet on ")
    assert "PASS  AblatableResNet(shortcuts=False) is AblatableResNet() with its shortcuts removed" in printed
    keys, printed = ablation_failing(capsys, AblatableResNet, only="measured", reported=[0.8, 0.7])
    assert keys == {"measured"} and "`ablation` should be a dict" in printed
    with pytest.raises(TypeError, match="no option ablation; its options are reported, data"):
        check_ablation(AblatableResNet, ablation=None)


@pytest.mark.parametrize(("model", "hint"), [(IgnoresItsArgument, "still adds two computed tensors 3 time(s)"),
                                             (NarrowerWithoutShortcuts, "has a parameter of shape"),
                                             (ZeroInitEvenWithoutShortcuts, "starts dead")])
def test_an_ablation_that_keeps_its_shortcuts_or_changes_the_network_fails(model, hint, capsys):
    keys, printed = ablation_failing(capsys, model, only="removed")
    assert keys == {"removed"}
    assert hint in printed


def test_the_reported_ablation_must_be_what_the_recipe_gives(capsys):
    data = load_dataset("fashion-mnist", train_size=512, test_size=256)
    honest = {"with shortcuts": grading_accuracy(AblatableResNet, data),
              "without shortcuts": grading_accuracy(lambda: AblatableResNet(shortcuts=False), data)}
    check_ablation(AblatableResNet, only="measured", reported=honest, data=data)
    assert "FAIL" not in capsys.readouterr().out
    shift = 0.1 if honest["without shortcuts"] < 0.9 else -0.1
    made_up = {**honest, "without shortcuts": honest["without shortcuts"] + shift}
    keys, printed = ablation_failing(capsys, AblatableResNet, only="measured", reported=made_up, data=data)
    assert keys == {"measured"} and "report the final validation accuracy of exactly that run" in printed
    keys, printed = ablation_failing(capsys, AblatableResNet, only="measured", reported=[0.8, 0.7], data=data)
    assert "should be a dict with the keys" in printed


def test_a_design_below_the_validation_target_gets_a_hint_not_a_traceback(capsys):
    history = History(test_accuracy=[0.41, 0.52])
    with pytest.raises(CheckFailed):
        check_validation_accuracy(history, target=0.65)
    assert "it reaches 0.520: compare a change at a time" in capsys.readouterr().out
    check_validation_accuracy(History(test_accuracy=[0.70]), target=0.65)


@pytest.mark.parametrize(("reported", "outcome"), [
    ({"with shortcuts": 0.74, "without shortcuts": 0.52}, "shortcuts help"),
    ({"with shortcuts": 0.800, "without shortcuts": 0.795}, "about the same"),
    ({"with shortcuts": 0.65, "without shortcuts": 0.75}, "shortcuts hurt"),
])
def test_the_ablation_prediction_is_judged_by_the_learners_own_numbers(reported, outcome, capsys):
    check_ablation_prediction(outcome, reported)
    assert "PASS" in capsys.readouterr().out
    wrong = next(choice for choice in ABLATION_OUTCOMES if choice != outcome)
    with pytest.raises(CheckFailed):
        check_ablation_prediction(wrong, reported)
    assert f"i.e. {outcome!r}" in capsys.readouterr().out


@pytest.mark.parametrize(("prediction", "reported", "hint"), [
    ("yes", {"with shortcuts": 0.7, "without shortcuts": 0.5}, "set it to one of"),
    ("shortcuts help", {"with": 0.7}, "should be a dict with the keys"),
])
def test_an_unreadable_ablation_prediction_says_what_to_store(prediction, reported, hint, capsys):
    with pytest.raises(CheckFailed):
        check_ablation_prediction(prediction, reported)
    assert hint in capsys.readouterr().out


class NoShortcutAtAll(SmallResNet):
    """Wrong: the ablation is honest, but MyResNet() itself adds no shortcut, so there is nothing to need."""

    def __init__(self, shortcuts: bool = True):
        super().__init__(skip=False)


@pytest.fixture
def tiny_fast_data(monkeypatch):
    """The autograder's mode, on a data set small enough for a unit test's training runs."""
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    return load_dataset("fashion-mnist", train_size=512, test_size=256)


def test_the_bands_are_those_of_the_recipe_that_runs(monkeypatch):
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    assert grading_bands() == grading_policy.BANDS["fast"]
    monkeypatch.delenv("RESIDUAL_COURSE_FAST")
    for variable in ("CI", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(variable, raising=False)
    assert grading_bands() == grading_policy.BANDS["default"]
    for bands in grading_policy.BANDS.values():
        assert list(bands.accuracy) == sorted(bands.accuracy) and 0 < bands.shortcut_gap < min(bands.accuracy)


def test_the_ablation_is_trained_once_for_both_checks_that_need_it(tiny_fast_data):
    first = grading_ablation(AblatableResNet, tiny_fast_data)
    assert first == (grading_accuracy(AblatableResNet, tiny_fast_data),
                     grading_accuracy(lambda: AblatableResNet(shortcuts=False), tiny_fast_data))
    assert grading_ablation(AblatableResNet, tiny_fast_data) is first
    other = load_dataset("fashion-mnist", train_size=256, test_size=256)
    assert grading_ablation(AblatableResNet, other) is not first


@pytest.mark.parametrize(("gap", "passes"), [(-1.0, True), (1.0, False)])
def test_the_shortcut_band_compares_the_graders_own_gap_with_the_band(gap, passes, tiny_fast_data, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(grading_policy.BANDS, "fast", Bands((0.3, 0.4, 0.5), gap))
    with_shortcuts, without = grading_ablation(AblatableResNet, tiny_fast_data)
    if passes:
        check_ablation(AblatableResNet, only="needed", data=tiny_fast_data)
        assert f"PASS  AblatableResNet needs its shortcuts: without them it loses at least {gap:.2f}" in \
            capsys.readouterr().out
        return
    keys, printed = ablation_failing(capsys, AblatableResNet, only="needed", data=tiny_fast_data)
    assert keys == {"needed"}
    assert f"with its shortcuts it reaches {with_shortcuts:.3f}, without them {without:.3f}" in printed
    assert "go deeper at the same budget" in printed


@pytest.mark.parametrize(("model", "hint"), [(IgnoresItsArgument, "still adds two computed tensors"),
                                             (NoShortcutAtAll, "no addition of the form x + F(x)")])
def test_the_shortcut_band_needs_a_residual_design_and_a_true_ablation(model, hint, tiny_fast_data, monkeypatch,
                                                                       capsys):
    monkeypatch.setitem(grading_policy.BANDS, "fast", Bands((0.3, 0.4, 0.5), -1.0))  # any gap would do
    keys, printed = ablation_failing(capsys, model, only="needed", data=tiny_fast_data)
    assert keys == {"needed"} and hint in printed


def test_the_shortcut_band_asks_for_the_development_data(capsys):
    keys, printed = ablation_failing(capsys, AblatableResNet, only="needed")
    assert keys == {"needed"} and "pass `development`" in printed
