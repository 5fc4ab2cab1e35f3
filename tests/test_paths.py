"""Paths through residual blocks: counted, drawn and weighed as Veit et al. weigh them."""

import math

import pytest
import torch
from fixtures.why_shortcuts_work import path_gradient_detached
from torch import nn

from residual_course import paths


def test_path_counts_are_binomial_and_add_up_to_every_subset():
    for blocks in (0, 1, 5, 15):
        counts = paths.path_counts(blocks)
        assert len(counts) == blocks + 1 and sum(counts) == 2**blocks
    assert paths.path_counts(4) == [1, 4, 6, 4, 1]
    with pytest.raises(ValueError, match="0 or more"):
        paths.path_counts(-1)


def test_random_paths_are_every_path_when_there_are_few_and_sorted_blocks_otherwise():
    generator = torch.Generator().manual_seed(0)
    assert paths.random_paths(4, 2, 10, generator) == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    drawn = paths.random_paths(12, 5, 7, generator)
    assert len(drawn) == 7 and all(len(p) == 5 == len(set(p)) and p == sorted(p) for p in drawn)


def test_gradient_by_length_averages_each_lengths_path_norms():
    torch.manual_seed(0)
    branches = [nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).eval() for _ in range(3)]
    x, grad_output = torch.randn(4, 3), torch.randn(4, 3)
    means = paths.gradient_by_length(path_gradient_detached, branches, x, grad_output, samples=10)
    norm = lambda path: torch.linalg.vector_norm(path_gradient_detached(branches, x, path, grad_output)).item()  # noqa: E731
    assert means[0] == pytest.approx(norm([]))
    assert means[1] == pytest.approx((norm([0]) + norm([1]) + norm([2])) / 3)
    assert means[3] == pytest.approx(norm([0, 1, 2]))


def test_gradient_shares_weigh_each_length_by_its_number_of_paths():
    shares = paths.gradient_shares([1.0, 0.5, 0.25])
    assert sum(shares) == pytest.approx(1)
    assert shares == pytest.approx([1 / 2.25, 1 / 2.25, 0.25 / 2.25])
    assert math.isclose(sum(paths.gradient_shares([2.0] * 5)), 1)
