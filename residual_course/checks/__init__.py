"""Learner-facing checks: each runs a learner's code on the course device and prints PASS or FAIL with a hint."""

from residual_course.checks.report import CheckFailed, claim
from residual_course.checks.residual_blocks import check_basic_block, check_bottleneck, check_preact_block
from residual_course.checks.vanishing_gradients import check_layer_grad_norms, check_sigmoid_derivative

__all__ = [
    "CheckFailed",
    "claim",
    "check_basic_block",
    "check_bottleneck",
    "check_layer_grad_norms",
    "check_preact_block",
    "check_sigmoid_derivative",
]
