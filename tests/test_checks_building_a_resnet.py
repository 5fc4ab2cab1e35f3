"""Lesson 06's checks: right pieces in any style pass; each typical mistake fails its own property with a hint."""

import pytest
import torch
from fixtures.building_a_resnet import (
    ConvProjectionStage,
    FunctionalGAPHead,
    HardcodedBlockResNet,
    ModuleListStage,
    NoProjectionStage,
    NoReluStage,
    PythonListStage,
    SeedStageWithShortcut,
    TorchvisionStyleResNet,
    UnregisteredStage,
    flatten_head,
    hidden_layer_head,
    make_stage_comprehension,
    make_stage_in_channels_everywhere,
    make_stage_loop,
    make_stage_one_short,
    make_stage_shared_block,
    make_stage_stride_everywhere,
    max_pool_head,
    resnet_from,
    sequential_gap_head,
    softmax_head,
)
from fixtures.residual_blocks import TorchvisionBasicBlock
from torch import nn
from torchvision.models import resnet18, resnet34

from residual_course.checks import CheckFailed
from residual_course.checks.building_a_resnet import (
    BlockRecorder,
    check_gap_head,
    check_make_stage,
    check_resnet,
    check_stage_shortcut,
)
from residual_course.formulas import (
    basic_block_params,
    count_parameters,
    flatten_head_params,
    gap_head_params,
    resnet_params,
    stage_plan,
    stem_params,
)

RIGHT_RESNET = resnet_from(make_stage_loop, sequential_gap_head)
# Unregistered layers stay on the CPU: only on a GPU does that show as a device mix-up as well.
ON_GPU_ALSO_DEVICE = {"device"} if torch.cuda.is_available() else set()


def failing(check, subject, capsys, **options) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject, **options)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


def passes(check, subject, capsys, **options) -> None:
    """Run a check expected to pass every property."""
    check(subject, **options)
    assert "FAIL" not in capsys.readouterr().out


# ---------------------------------------------------------------- formulas


@pytest.mark.parametrize(("factory", "layers"), [(resnet18, [2, 2, 2, 2]), (resnet34, [3, 4, 6, 3])])
def test_resnet_formula_matches_torchvision(factory, layers):
    assert resnet_params(basic_block_params, layers) == count_parameters(factory())


def test_resnet18_splits_into_stem_blocks_and_head():
    blocks = sum(basic_block_params(*args) for args in stage_plan([2, 2, 2, 2]))
    assert (stem_params(3), blocks, gap_head_params(512, 1000)) == (9_536, 11_166_976, 513_000)


def test_head_formulas():
    assert gap_head_params(512, 10) == 5_130
    assert flatten_head_params(512, 7, 7, 10) == 250_890


def test_stage_plan_downsamples_at_the_start_of_every_later_stage():
    assert stage_plan([2, 1], (8, 16)) == [(8, 8, 1), (8, 8, 1), (8, 16, 2)]


def test_recorder_builds_and_remembers_blocks():
    recorder = BlockRecorder()
    recorder(3, 4, 2)
    assert recorder.arguments() == [(3, 4, 2)]
    assert recorder.__name__ == "ProbeBlock"


# ---------------------------------------------------------------- make_stage, StageWithShortcut, GAPHead, ResNet

OTHER_RESNET_SIZES = {"layers": [1, 2, 1], "widths": (4, 8, 16), "num_classes": 3}


@pytest.mark.parametrize(("check", "subject", "other_sizes"), [
    (check_make_stage, make_stage_loop, {"channels": 4}),
    (check_make_stage, make_stage_comprehension, {"channels": 4}),
    (check_make_stage, ModuleListStage, {"channels": 4}),
    (check_stage_shortcut, SeedStageWithShortcut, {"channels": 6}),
    (check_gap_head, FunctionalGAPHead, {"channels": 5, "num_classes": 3}),
    (check_gap_head, sequential_gap_head, {"channels": 5, "num_classes": 3}),
    (check_resnet, TorchvisionStyleResNet, OTHER_RESNET_SIZES),
    (check_resnet, RIGHT_RESNET, OTHER_RESNET_SIZES),
])
def test_right_pieces_in_any_style_pass_at_any_size(check, subject, other_sizes, capsys):
    passes(check, subject, capsys)
    passes(check, subject, capsys, **other_sizes)


@pytest.mark.parametrize(("check", "subject", "broken", "hint"), [
    (check_make_stage, make_stage_stride_everywhere, {"stride"}, "only the first block takes the stride"),
    (check_make_stage, make_stage_in_channels_everywhere, {"blocks", "stride", "device"},
     "every later block maps out_channels"),
    (check_make_stage, make_stage_one_short, {"blocks"}, "once for each of the num_blocks blocks"),
    (check_make_stage, make_stage_shared_block, {"blocks"}, "would share its weights"),
    (check_make_stage, PythonListStage, {"blocks"} | ON_GPU_ALSO_DEVICE, "not in a Python list"),
    (check_stage_shortcut, NoProjectionStage, {"projection"}, "fails at an addition"),
    (check_stage_shortcut, NoReluStage, {"identity"}, "apply ReLU after the addition"),
    (check_stage_shortcut, ConvProjectionStage, {"projection"}, "not 3x3"),
    (check_stage_shortcut, UnregisteredStage, {"identity", "projection"} | ON_GPU_ALSO_DEVICE,
     "store the stage as an attribute"),
    (check_gap_head, flatten_head, {"pools"}, "nn.AdaptiveAvgPool2d(1), then flatten"),
    (check_gap_head, max_pool_head, {"pools"}, "not the maximum"),
    (check_gap_head, softmax_head, {"linear"}, "no softmax"),
    (check_gap_head, hidden_layer_head, {"linear"}, "one nn.Linear"),
    (check_resnet, resnet_from(make_stage_loop, sequential_gap_head, stem_stride=1), {"stem"}, "must have stride 2"),
    (check_resnet, resnet_from(make_stage_loop, sequential_gap_head, maxpool=False), {"stem"},
     "nn.MaxPool2d(3, stride=2"),
    (check_resnet, resnet_from(make_stage_loop, sequential_gap_head, first_stride=2), {"stages"},
     "keeps the resolution"),
    (check_resnet, HardcodedBlockResNet, {"stem", "stages", "params", "small input"}, "never ran the block"),
])
def test_each_mistake_fails_its_own_property_with_a_hint(check, subject, broken, hint, capsys):
    keys, printed = failing(check, subject, capsys)
    assert keys == broken
    assert hint in printed


def test_resnet_with_torchvision_blocks_has_torchvision_parameter_count():
    assert count_parameters(TorchvisionStyleResNet(TorchvisionBasicBlock, [2, 2, 2, 2])) == 11_689_512


@pytest.mark.parametrize(("make_stage", "head"), [
    (make_stage_stride_everywhere, sequential_gap_head),
    (make_stage_loop, flatten_head),
    (make_stage_stride_everywhere, flatten_head),
])
def test_resnet_checks_do_not_charge_for_mistakes_in_its_pieces(make_stage, head, capsys):
    passes(check_resnet, resnet_from(make_stage, head), capsys)


def test_checks_report_unfinished_exercises(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for check in (check_make_stage, check_stage_shortcut, check_gap_head, check_resnet):
        with pytest.raises(CheckFailed, match="is not implemented yet"):
            check(stub)
        assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_checks_create_inputs_on_the_course_device(capsys):
    expected = "cuda" if torch.cuda.is_available() else "cpu (no GPU found)"
    check_gap_head(FunctionalGAPHead, only="linear")
    assert f"on {expected}" in capsys.readouterr().out
    assert isinstance(sequential_gap_head(2, 2), nn.Module)
