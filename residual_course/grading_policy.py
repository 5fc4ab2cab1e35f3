"""How the capstone is graded: the parameter budget, the fixed training recipe, and the grader's own accuracy call.

It lives outside the checks on purpose: the policy is the grader's, and a learner imports it only to reproduce the
score the grader will give (`grading_accuracy(MyResNet, load_dataset("fashion-mnist"))`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from residual_course.data import DataSet
from residual_course.runtime import seed_everything
from residual_course.training import evaluate, fit

PARAMETER_BUDGET = 100_000
# How every submission is trained for grading: fixed, so scores compare designs, not training recipes.
# fit() shrinks it in fast mode (autograding, CI) to at most 2 epochs of 30 steps.
GRADING_RECIPE = {"epochs": 3, "lr": 1e-3, "optimizer": "adam", "batch_size": 128, "weight_decay": 0.0, "seed": 0}


def grading_accuracy(factory: Callable[[], nn.Module], data: DataSet, seed: int = 0) -> float:
    """Build a fresh model with a fixed seed, train it with GRADING_RECIPE on data.train, return data.test accuracy.

    cuDNN is asked for deterministic convolutions meanwhile, so that grading on a GPU gives the same score twice.
    """
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        seed_everything(seed)
        model = factory()
        fit(model, data, **GRADING_RECIPE, progress=False)
        return evaluate(model, data.test)[1]
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
