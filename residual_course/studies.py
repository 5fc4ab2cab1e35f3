"""Depth studies: the same builders trained at several depths and seeds under one recipe, so lessons compare
architectures (plain or residual, shallow or deep) and not training runs, and say how much the seeds disagree.

What counts is the loss the networks settle at on their own training data: `final_train_loss` is measured after
training, with the final weights in eval mode, on the whole training subset (the same number for every seed's
data), and the spread over seeds decides whether a claim holds ("worst seed").
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from residual_course.data import DataSet, fast_sizes, load_dataset
from residual_course.runtime import fast_mode, seed_everything
from residual_course.training import History, evaluate, fit


@dataclass(frozen=True)
class Recipe:
    """One way to train, shared by every run of a study: data size, optimiser, schedule, budget."""

    train_size: int
    epochs: int
    lr: float
    optimizer: str = "sgd"
    schedule: str = "one-cycle"
    batch_size: int = 128

    def fit_options(self) -> dict:
        """The keyword arguments of `fit` this recipe fixes."""
        return {"epochs": self.epochs, "lr": self.lr, "optimizer": self.optimizer, "schedule": self.schedule,
                "batch_size": self.batch_size}


# Lessons 02 and 03 (MLPs, 8 vs 32 layers): SGD with momentum 0.9, one-cycle to lr 0.02, 30 epochs of a
# 5,000-image class-balanced subset: long enough for the curves to settle (the last 10% of epochs move the
# training loss by under 0.02), 30 s per 32-layer run on a 2-core CPU.
MLP_RECIPE = Recipe(train_size=5000, epochs=30, lr=0.02)
# Lesson 07 (CNNs of 8, 20 and 32 layers): Adam with one-cycle to 3e-3, 8 epochs of the same subset.
CNN_RECIPE = Recipe(train_size=5000, epochs=8, lr=3e-3, optimizer="adam")
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Run:
    """One network trained once: what it was, and where it ended."""

    family: str
    depth: int
    seed: int
    final_train_loss: float
    final_train_accuracy: float
    history: History = field(repr=False)
    model: nn.Module = field(repr=False)  # the trained network, in eval mode


@dataclass(frozen=True)
class Summary:
    """One (family, depth) over its seeds."""

    family: str
    depth: int
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]

    @property
    def mean_loss(self) -> float:
        return statistics.fmean(self.losses)

    @property
    def loss_spread(self) -> float:
        """Standard deviation over seeds (0 for a single seed)."""
        return statistics.stdev(self.losses) if len(self.losses) > 1 else 0.0

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(self.accuracies)


def study_data(recipe: Recipe, device: object = None) -> DataSet:
    """The recipe's training subset (class-balanced, the same images for every run; the fast-mode subset in fast
    mode) and a small test split."""
    train_size = fast_sizes()[0] or recipe.train_size
    return load_dataset("fashion-mnist", device=device, train_size=min(train_size, recipe.train_size),
                        test_size=1000)


def train_study(builders: dict[str, Callable[[int], nn.Module]], depths: Sequence[int], data: DataSet,
                recipe: Recipe = MLP_RECIPE, seeds: Sequence[int] = SEEDS, progress: bool = True) -> list[Run]:
    """Train every builder at every depth for every seed, each from the same seed, under the one recipe.

    In fast mode one seed only (fit() then caps the budget itself).
    """
    runs = []
    for seed in seeds[:1] if fast_mode() else seeds:
        for family, build in builders.items():
            for depth in depths:
                seed_everything(seed)
                model = build(depth)
                history = fit(model, data, seed=seed, progress=progress, **recipe.fit_options())
                loss, accuracy = evaluate(model, data.train)
                runs.append(Run(family, depth, seed, loss, accuracy, history, model.eval()))
    return runs


def summarise(runs: Sequence[Run]) -> dict[tuple[str, int], Summary]:
    """(family, depth) -> its runs' final training losses and accuracies, seed by seed."""
    grouped: dict[tuple[str, int], list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        grouped.setdefault((run.family, run.depth), []).append(run)
    return {key: Summary(*key, tuple(r.final_train_loss for r in group), tuple(r.final_train_accuracy for r in group))
            for key, group in grouped.items()}


def worst_margin(runs: Sequence[Run], higher: tuple[str, int], lower: tuple[str, int]) -> float:
    """The smallest, over seeds, of loss(higher) - loss(lower): positive when `higher` lost on every seed."""
    by_seed = {(r.family, r.depth, r.seed): r.final_train_loss for r in runs}
    seeds = sorted({r.seed for r in runs})
    return min(by_seed[(*higher, s)] - by_seed[(*lower, s)] for s in seeds)


def modes_table(runs: Sequence[Run]) -> str:
    """Each run's final training loss twice: train mode (the last epoch's mean over its batches, BatchNorm on batch
    statistics) and eval mode (the final weights on the whole subset, BatchNorm on its running statistics). A network
    whose two numbers disagree has running statistics that do not match its batches: a gap in eval mode alone would
    be a BatchNorm artefact, not a network that trains worse."""
    width = max(len(f"{r.family}, {r.depth} layers") for r in runs) + 2
    lines = [f"{'network':<{width}}{'seed':>4}  {'train mode':>10}  {'eval mode':>9}"]
    for run in sorted(runs, key=lambda r: (r.family, r.depth, r.seed)):
        lines.append(f"{f'{run.family}, {run.depth} layers':<{width}}{run.seed:>4}  {run.history.train_loss[-1]:>10.3f}"
                     f"  {run.final_train_loss:>9.3f}")
    return "\n".join(lines)


def table(summaries: dict[tuple[str, int], Summary]) -> str:
    """Final training loss and accuracy per network: mean, spread (std) and range over the seeds."""
    labels = {key: f"{key[0]}, {key[1]} layers" for key in summaries}
    width = max(len("network"), *map(len, labels.values())) + 2
    lines = [f"{'network':<{width}}{'training loss: mean ± std [min, max]':<38}training accuracy (mean)"]
    for key, s in summaries.items():
        loss = f"{s.mean_loss:.3f} ± {s.loss_spread:.3f} [{min(s.losses):.3f}, {max(s.losses):.3f}]"
        lines.append(f"{labels[key]:<{width}}{loss:<38}{s.mean_accuracy:.1%}")
    return "\n".join(lines)


IDENTITY_BASELINE = 0.5 - 1 / (2 * torch.pi)  # error of answering each feature's mean: the variance of relu(N(0, 1))


def identity_error(make_block: Callable[[int], nn.Module], blocks: int = 10, width: int = 64, steps: int = 200,
                   device: object = None) -> float:
    """Train a stack of blocks with Adam to copy its (non-negative) input; the final mean squared error in eval mode.

    The inputs are relu(N(0, 1)) vectors, like the outputs of a ReLU layer, so the identity is exactly what a stack
    of residual blocks computes when all their branches output zero. Seeded: the same builder gives the same number.
    """
    seed_everything(0)
    stack = nn.Sequential(*[make_block(width) for _ in range(blocks)]).to(device)
    optimizer = torch.optim.Adam(stack.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.relu(torch.randn(256, width, device=device))
        loss = (stack(x) - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    stack.eval()
    with torch.no_grad():
        x = torch.relu(torch.randn(4096, width, device=device))
        return (stack(x) - x).square().mean().item()
