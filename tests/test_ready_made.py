"""No exercise can be answered with a ready-made module from torchvision or the course package.

The rule every check states: an answer is built from torch.nn's layers and the learner's own classes. These are the
drop-ins a learner finds first: the course's own builders, torchvision's blocks and networks, and thin wrappers or
subclasses of them that give them the course's interface (the fixtures' Torchvision* classes passed every behaviour
check before this rule). Each loses the exercise's points, and the FAIL says why.
"""

import pytest
from fixtures.residual_blocks import TorchvisionBasicBlock, TorchvisionBottleneck
from fixtures.resnext_densenet import TorchvisionDenseBlock, TorchvisionDenseLayer, TorchvisionResNeXtBlock
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.ops import MLP as TorchvisionMLP

from residual_course.checks.building_a_resnet import check_gap_head, check_resnet
from residual_course.checks.degradation import check_plain_mlp
from residual_course.checks.pytorch_refresher import check_mlp
from residual_course.checks.report import CheckFailed
from residual_course.checks.residual_blocks import check_basic_block, check_bottleneck
from residual_course.checks.resnext_densenet import (
    check_dense_block,
    check_dense_layer,
    check_resnext_block,
    check_transition,
)
from residual_course.convnets import ConvNet
from residual_course.models import make_mlp


def course_plain_mlp(depth: int, width: int) -> nn.Module:
    return make_mlp(depth, width, activation="relu", init="kaiming", norm="batch")


def unwrapped_course_plain_mlp(depth: int, width: int) -> nn.Module:
    return nn.Sequential(*course_plain_mlp(depth, width))


def torchvision_mlp(in_features: int = 784, hidden_features=(256, 128), num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), TorchvisionMLP(in_features, [*hidden_features, num_classes]))


def course_resnet(block, layers, num_classes=1000, in_channels=3, small_input=False, widths=(64, 128, 256, 512)):
    return ConvNet(block, widths=widths[:len(layers)], depths=layers, in_channels=in_channels,
                   num_classes=num_classes)


def course_gap_head(in_channels: int, num_classes: int) -> nn.Module:
    return ConvNet(nn.Identity, widths=(in_channels,), depths=(0,), num_classes=num_classes).head


def torchvision_dense_layer(in_channels: int, growth_rate: int) -> nn.Module:
    return tv_densenet._DenseLayer(in_channels, growth_rate, bn_size=4, drop_rate=0)


def torchvision_transition(in_channels: int, out_channels: int) -> nn.Module:
    return tv_densenet._Transition(in_channels, out_channels)


DROP_INS = [
    (check_mlp, torchvision_mlp, "torchvision.ops.misc.MLP"),
    (check_plain_mlp, course_plain_mlp, "residual_course.models.MLP"),
    (check_plain_mlp, unwrapped_course_plain_mlp, "residual_course.models.HiddenUnit"),
    (check_basic_block, TorchvisionBasicBlock, "torchvision.models.resnet.BasicBlock"),
    (check_bottleneck, TorchvisionBottleneck, "torchvision.models.resnet.Bottleneck"),
    (check_resnet, course_resnet, "residual_course.convnets.ConvNet"),
    (check_gap_head, course_gap_head, "residual_course.convnets.Head"),
    (check_resnext_block, TorchvisionResNeXtBlock, "torchvision.models.resnet.Bottleneck"),
    (check_dense_layer, torchvision_dense_layer, "torchvision.models.densenet._DenseLayer"),
    (check_dense_layer, TorchvisionDenseLayer, "torchvision.models.densenet._DenseLayer"),
    (check_dense_block, TorchvisionDenseBlock, "torchvision.models.densenet._DenseBlock"),
    (check_transition, torchvision_transition, "torchvision.models.densenet._Transition"),
]


@pytest.mark.parametrize(("check", "drop_in", "named"), DROP_INS, ids=[d[1].__name__ for d in DROP_INS])
def test_a_ready_made_answer_fails_every_property_and_says_why(check, drop_in, named, capsys):
    with pytest.raises(CheckFailed):
        check(drop_in)
    printed = capsys.readouterr().out
    assert "PASS" not in printed
    assert f"built from {named}" in printed and "ready-made" in printed


def test_torch_nn_layers_alone_are_fine(capsys):
    def mlp(in_features: int = 784, hidden_features=(256, 128), num_classes: int = 10) -> nn.Module:
        sizes, layers = [in_features, *hidden_features], [nn.Flatten()]
        for fan_in, fan_out in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(sizes[-1], num_classes))

    check_mlp(mlp)
    assert "FAIL" not in capsys.readouterr().out
