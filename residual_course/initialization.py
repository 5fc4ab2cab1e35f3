"""Initialisations that change a built network's weights, so that a deep residual network starts as a shallow one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from residual_course.probes import trace_forward


def zero_init_last_norm(block: nn.Module, inputs: Tensor) -> nn.Module:
    """Zero the scale (gamma) of the last BatchNorm that runs, so the residual branch starts as zero (Goyal et al.
    2017; torchvision's zero_init_residual). `inputs` is a batch the block accepts, to see which one runs last."""
    norms = trace_forward(block, inputs, (nn.BatchNorm1d, nn.BatchNorm2d))
    if not norms:
        raise ValueError("this block runs no BatchNorm layer, so there is no gamma to zero")
    last = norms[-1].module
    with torch.no_grad():
        last.weight.zero_()
    return last
