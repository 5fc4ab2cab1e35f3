"""The capstone's recipe rewards design: under the autograder's budget, on every seed, the solution's MyResNet beats
the same network without its shortcuts, which beats a deliberately poor residual net (benchmarks/capstone_ranking.py
prints the figures, in default mode too)."""

import sys

import pytest
from notebooks import REPOSITORY

from residual_course.data import load_dataset
from residual_course.grading_policy import grading_accuracy

sys.path.insert(0, str(REPOSITORY / "benchmarks"))
from capstone_ranking import designs  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_better_design_scores_better_under_the_grading_recipe(seed, monkeypatch):
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    data = load_dataset("fashion-mnist")
    scores = {name: grading_accuracy(factory, data, seed=seed) for name, factory in designs().items()}
    solution, plain, poor = scores.values()
    assert solution > plain + 0.05 and plain > poor + 0.05, f"seed {seed}: {scores}"
