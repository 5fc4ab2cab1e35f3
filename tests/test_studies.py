"""Depth studies: every run under one recipe, seed by seed, summarised so a claim can use the worst seed."""

import math

import pytest
import torch
from torch import nn

from residual_course.data import DataSet, Split
from residual_course.studies import Recipe, Run, modes_table, summarise, table, train_study, worst_margin
from residual_course.training import History, evaluate


def run(family: str, depth: int, seed: int, loss: float, accuracy: float = 0.5) -> Run:
    """A finished run with only the numbers a summary reads."""
    return Run(family, depth, seed, loss, accuracy, History(), nn.Identity())


RUNS = [run("plain", 8, 0, 0.20), run("plain", 8, 1, 0.10), run("plain", 32, 0, 1.00), run("plain", 32, 1, 0.15),
        run("residual", 32, 1, 0.12, 0.9), run("residual", 32, 0, 0.08, 0.7)]


def test_summaries_keep_every_seed_in_seed_order_and_their_spread():
    summaries = summarise(RUNS)
    assert list(summaries) == [("plain", 8), ("plain", 32), ("residual", 32)]
    residual = summaries[("residual", 32)]
    assert residual.losses == (0.08, 0.12) and residual.accuracies == (0.7, 0.9)
    assert residual.mean_loss == pytest.approx(0.10) and residual.mean_accuracy == pytest.approx(0.8)
    assert residual.loss_spread == pytest.approx(math.sqrt(2) * 0.02)
    assert summarise(RUNS[:1])[("plain", 8)].loss_spread == 0.0


def test_the_worst_margin_is_the_seed_where_the_claim_holds_least():
    # plain-32 minus plain-8: seed 0 +0.80, seed 1 +0.05; the claim "plain-32 is worse" holds by at least 0.05
    assert worst_margin(RUNS, higher=("plain", 32), lower=("plain", 8)) == pytest.approx(0.05)
    assert worst_margin(RUNS, higher=("plain", 8), lower=("plain", 32)) == pytest.approx(-0.80)


def test_the_table_has_one_aligned_row_per_network_with_mean_spread_and_range():
    lines = table(summarise(RUNS)).splitlines()
    assert len(lines) == 4 and lines[0].startswith("network")
    assert "residual, 32 layers" in lines[3] and "0.100 ± 0.028 [0.080, 0.120]" in lines[3] and "80.0%" in lines[3]
    assert len({line.index("±") for line in lines[1:]}) == 1, "the loss column starts at the same place in every row"


def test_a_study_trains_each_builder_at_each_depth_and_seed_from_the_same_start(monkeypatch):
    monkeypatch.delenv("RESIDUAL_COURSE_FAST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(64, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    data = DataSet("noise", Split(images, labels), Split(images[:16], labels[:16]), tuple("abcdefghij"))

    def build(depth: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), *[nn.Linear(784 if i == 0 else 16, 16) for i in range(depth - 1)],
                             nn.Linear(16, 10))

    recipe = Recipe(train_size=64, epochs=2, lr=0.05, batch_size=32)
    runs = train_study({"a": build, "b": build}, depths=(2, 3), data=data, recipe=recipe, seeds=(0, 1),
                       progress=False)
    assert [(r.family, r.depth, r.seed) for r in runs] == [
        (f, d, s) for s in (0, 1) for f in ("a", "b") for d in (2, 3)]
    for r in runs:
        assert not r.model.training and len(r.history.train_loss) == 2
        assert (r.final_train_loss, r.final_train_accuracy) == pytest.approx(evaluate(r.model, data.train))
    same_start = [r.final_train_loss for r in runs if r.depth == 2 and r.seed == 0]
    assert same_start[0] == pytest.approx(same_start[1]), "one builder, one seed, one recipe: the same run"


def test_the_modes_table_shows_each_runs_train_mode_and_eval_mode_loss():
    history = History(train_loss=[2.0, 0.41], test_loss=[2.0, 0.5])
    runs = [Run("plain", 8, seed, 0.35 + seed / 100, 0.9, history, nn.Identity()) for seed in (0, 1)]
    lines = modes_table(runs).splitlines()
    assert lines[0].split() == ["network", "seed", "train", "mode", "eval", "mode"]
    assert lines[1].split() == ["plain,", "8", "layers", "0", "0.410", "0.350"]
    assert lines[2].split()[-1] == "0.360"
