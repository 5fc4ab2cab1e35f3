"""Checks for lesson 07's lesion test: the learner's measurement of how much accuracy a trained network keeps when
one of its blocks is deleted, judged on networks and data drawn from this run's salt."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import name_of, probe_size, random_tensor, randomize_weights, salted_seed

AccuracyKept = Callable[[nn.Sequential, nn.Sequential, nn.Sequential, Tensor, Tensor, Sequence[int]], float]
CLASSES = 4


def _accuracy(stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module, images: Tensor, labels: Tensor) -> float:
    """The share of `images` the network stem -> blocks -> head labels right."""
    with torch.no_grad():
        x = stem(images)
        for block in blocks:
            x = block(x)
        return (head(x).argmax(dim=1) == labels).float().mean().item()


def _lesion(stem: nn.Module, blocks: nn.Sequential, head: nn.Module, images: Tensor, labels: Tensor,
            indices: Sequence[int]) -> tuple[float, list[float]]:
    """The whole network's accuracy, and its accuracy with each block of `indices` deleted (one at a time)."""
    whole = _accuracy(stem, list(blocks), head, images, labels)
    cut = [_accuracy(stem, [b for i, b in enumerate(blocks) if i != index], head, images, labels) for index in indices]
    return whole, cut


def _network(device: torch.device, key: object) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential, int]:
    """A stem, shape-keeping blocks whose order matters, and a head, at a width and depth this run chooses."""
    width, count = probe_size(6, 12, ("width", key)), probe_size(5, 8, ("count", key))
    stem = nn.Sequential(nn.Linear(width, width), nn.ReLU())
    blocks = nn.Sequential(*(nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(count)))
    head = nn.Sequential(nn.Linear(width, CLASSES))
    network = nn.Sequential(stem, blocks, head)
    randomize_weights(network, salted_seed("accuracy-kept", key))
    return stem.to(device), blocks.to(device), head.to(device), width


def _data(stem: nn.Sequential, blocks: nn.Sequential, head: nn.Sequential, width: int, device: torch.device,
          key: object) -> tuple[Tensor, Tensor]:
    """Inputs, and labels that the whole network gets right on about two thirds of them (the rest at random)."""
    seed = salted_seed("accuracy-kept-data", key)
    images = random_tensor(device, probe_size(90, 150, ("images", key)), width, seed=seed)
    with torch.no_grad():
        labels = head(blocks(stem(images))).argmax(dim=1)
    generator = torch.Generator().manual_seed(seed)
    wrong = torch.rand(len(labels), generator=generator) < 1 / 3
    labels[wrong.to(device)] = torch.randint(0, CLASSES, (int(wrong.sum()),), generator=generator).to(device)
    return images, labels


check_accuracy_kept = Check("accuracy_kept", "Check a learner's accuracy_kept(stem, blocks, head, images, labels, "
                            "indices) -> the fraction of its accuracy the network keeps with its worst block of "
                            "`indices` deleted, and print one PASS/FAIL line per property.")


@check_accuracy_kept.property("worst block", "the accuracy with the worst single block deleted, over the whole "
                              "network's accuracy")
def _expect_worst_block(measure: AccuracyKept, device: torch.device) -> None:
    """The learner's number is the check's own, on two networks and block lists this run draws."""
    name = name_of(measure, "accuracy_kept")
    for key in range(2):
        stem, blocks, head, width = _network(device, key)
        images, labels = _data(stem, blocks, head, width, device, key)
        indices = sorted(set(range(1, len(blocks))) - {probe_size(1, len(blocks) - 1, ("skip", key))})
        before = [block[0].weight.clone() for block in blocks]
        got = measure(stem, blocks, head, images, labels, indices)
        if isinstance(got, Tensor):
            raise PropertyFailed(f"{name} returned a tensor: return one Python number (`.item()` gives one)")
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise PropertyFailed(f"{name} returned a {type(got).__name__}: return one number, the fraction kept")
        if len(blocks) != len(before) or not all(torch.equal(b[0].weight, w) for b, w in zip(blocks, before,
                                                                                            strict=True)):
            raise PropertyFailed(f"{name} changed the blocks it was given: build a new sequence for each deletion "
                                 "and leave `blocks` as it was (the next deletion needs all of them)")
        whole, cut = _lesion(stem, blocks, head, images, labels, indices)
        if abs(got - min(cut) / whole) > 1e-6:
            hints = [(sum(cut) / len(cut) / whole, "that is the average over the deletions: take the worst one"),
                     (max(cut) / whole, "that is the best deletion: take the worst one"),
                     (min(cut), "that is an accuracy: divide it by the whole network's accuracy")]
            hint = next((text for value, text in hints if abs(got - value) < 1e-6),
                        "delete one block of `indices` at a time (the others stay), measure each accuracy, "
                        "and divide the lowest by the whole network's")
            raise PropertyFailed(f"{name} returned {got:.4f} on a network of {len(blocks)} blocks, indices "
                                 f"{indices}: {hint}")
