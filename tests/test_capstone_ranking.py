"""The capstone's recipe rewards design: under the autograder's budget, on every seed of five, the solution's MyResNet
beats the same network without its shortcuts, which beats a deliberately poor residual net, and the solution clears
every accuracy band (benchmarks/capstone_ranking.py prints the figures, on the validation split and in default mode
too)."""

import sys

import pytest
from notebooks import REPOSITORY

from residual_course.data import load_dataset
from residual_course.grading_policy import grading_accuracy, grading_bands

sys.path.insert(0, str(REPOSITORY / "benchmarks"))
from capstone_ranking import PLAIN, POOR, REFERENCE, designs  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_better_design_scores_better_under_the_grading_recipe(seed, monkeypatch):
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    data, factories = load_dataset("fashion-mnist"), designs()
    scores = {name: grading_accuracy(factories[name], data, seed=seed) for name in (REFERENCE, PLAIN, POOR)}
    solution, plain, poor = scores.values()
    assert solution > plain + 0.05 and plain > poor + 0.05, f"seed {seed}: {scores}"
    assert solution > max(grading_bands().accuracy) + 0.03, f"seed {seed}: the solution must clear every band"
