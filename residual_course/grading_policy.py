"""How the capstone is graded: the parameter budget, the fixed training recipe, the bands, and the grader's own calls.

It lives outside the checks on purpose: the policy is the grader's, and a learner imports it only to reproduce the
score the grader will give (`grading_accuracy(MyResNet, load_dataset("fashion-mnist"))`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from residual_course.data import DataSet
from residual_course.runtime import fast_mode, seed_everything
from residual_course.training import fit

PARAMETER_BUDGET = 100_000
# How every submission is trained for grading: fixed, so scores compare designs, not training recipes.
# fit() shrinks it in fast mode (autograding, CI) to 30 steps an epoch, on load_dataset's fast subset.
GRADING_RECIPE = {"epochs": 2, "lr": 1e-3, "optimizer": "adam", "batch_size": 128, "weight_decay": 0.0, "seed": 0}


class Bands(NamedTuple):
    """Where points start under one recipe: three test-split accuracies, and how much validation accuracy a design
    must lose without its shortcuts (in the grader's own ablation, the mean over `ablation_seeds`) for them to count
    as needed."""

    accuracy: tuple[float, float, float]
    shortcut_gap: float
    ablation_seeds: tuple[int, ...] = (0,)


# Placed with benchmarks/capstone_ranking.py, seeds 0-4: every edge lies outside the spread of lesson 09's reference
# design (ResNet-20's layout at half width) and clear of its plain version and of a poor residual net, so the
# reference earns every point on every seed. The short run is noisier (682 validation images), hence its wider gap.
# In the whole recipe one seed's gap cannot tell the reference (+0.016 to +0.030) from a shallow, wide design that
# does not need its shortcuts (-0.004 to +0.021): the mean over three seeds can (+0.022 against +0.006).
BANDS = {"fast": Bands((0.35, 0.45, 0.65), 0.08), "default": Bands((0.75, 0.80, 0.84), 0.012, (0, 1, 2))}


def grading_bands() -> Bands:
    """The bands of the recipe that runs now: the autograder's short budget in fast mode, the whole recipe otherwise."""
    return BANDS["fast" if fast_mode() else "default"]


def grading_accuracy(factory: Callable[[], nn.Module], data: DataSet, seed: int = 0) -> float:
    """Build a fresh model seeded with `seed`, train it with GRADING_RECIPE (batches shuffled by the same seed) on
    data.train, return its data.test accuracy.

    cuDNN is asked for deterministic convolutions meanwhile, so that grading on a GPU gives the same score twice.
    """
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        seed_everything(seed)
        model = factory()
        return fit(model, data, **{**GRADING_RECIPE, "seed": seed}, progress=False).test_accuracy[-1]
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


_ablations: dict[tuple, tuple[DataSet, tuple[float, float]]] = {}


def grading_ablation(factory: Callable[..., nn.Module], data: DataSet, seed: int = 0) -> tuple[float, float]:
    """grading_accuracy of factory() and of factory(shortcuts=False) on `data` with `seed`: with and without shortcuts.

    The figures are kept for the same factory, seed, data and mode: the check of the ablation's numbers and the
    shortcut band each need them, in two cells of the lesson, and the runs are the lesson's longest.
    """
    key = (factory, seed, fast_mode())
    if key not in _ablations or _ablations[key][0] is not data:
        figures = (grading_accuracy(factory, data, seed),
                   grading_accuracy(lambda: factory(shortcuts=False), data, seed))
        _ablations[key] = data, figures
    return _ablations[key][1]
