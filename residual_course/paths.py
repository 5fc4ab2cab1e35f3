"""Residual networks as ensembles of paths (Veit et al. 2016): the Jacobian of B blocks, prod (I + J_l), expands
into 2^B paths, one per subset of blocks whose branch the signal takes (the shortcut in every other block). How many
paths each length has, and how much of the gradient paths of each length carry, sampled with a function that
measures one path's gradient (the lesson's learners write it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

PathGradient = Callable[[Sequence[nn.Module], Tensor, list[int], Tensor], Tensor]


def path_counts(blocks: int) -> list[int]:
    """How many paths of each length 0..blocks there are: the binomial coefficients C(blocks, k)."""
    if blocks < 0:
        raise ValueError(f"blocks must be a number of residual blocks (0 or more), got {blocks}.")
    return [math.comb(blocks, length) for length in range(blocks + 1)]


def random_paths(blocks: int, length: int, count: int, generator: torch.Generator) -> list[list[int]]:
    """`count` paths of `length` blocks drawn at random (with replacement), or every such path when there are no
    more than `count` of them; each path is its block indices, counted from the input, in order."""
    if math.comb(blocks, length) <= count:
        return [list(path) for path in itertools.combinations(range(blocks), length)]
    return [sorted(torch.randperm(blocks, generator=generator)[:length].tolist()) for _ in range(count)]


def gradient_by_length(path_gradient: PathGradient, branches: Sequence[nn.Module], x: Tensor, grad_output: Tensor,
                       samples: int, seed: int = 0) -> list[float]:
    """For each length 0..B, the mean norm of the gradient that one path of that length carries back to x,
    `path_gradient(branches, x, path, grad_output)`, over up to `samples` paths drawn at random (from `seed`)."""
    generator = torch.Generator().manual_seed(seed)
    means = []
    for length in range(len(branches) + 1):
        norms = [torch.linalg.vector_norm(path_gradient(branches, x, path, grad_output)).item()
                 for path in random_paths(len(branches), length, samples, generator)]
        means.append(sum(norms) / len(norms))
    return means


def gradient_shares(mean_norms: Sequence[float]) -> list[float]:
    """Each length's share of the gradient: its number of paths times its mean gradient norm (Veit et al.'s Fig. 6c),
    over the sum of all lengths'."""
    totals = [count * norm for count, norm in zip(path_counts(len(mean_norms) - 1), mean_norms, strict=True)]
    return [total / sum(totals) for total in totals]
