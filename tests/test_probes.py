"""Probes look inside a module by running it: call order, shapes, and the last BatchNorm."""

import torch
from fixtures.residual_blocks import TorchvisionBottleneck
from torch import nn

from residual_course.probes import trace_forward


def test_trace_lists_calls_in_execution_order_and_removes_its_hooks():
    block = TorchvisionBottleneck(16, 8, stride=2)
    calls = trace_forward(block, torch.randn(2, 16, 8, 8), (nn.Conv2d,))
    assert [c.module.kernel_size for c in calls] == [(1, 1), (3, 3), (1, 1), (1, 1)]
    assert calls[1].output_shape == (2, 8, 4, 4)
    assert all(not m._forward_hooks for m in block.modules())
