"""Checks for lesson 06's lesion test: the block surgery, and the learner's prediction against the measurement."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from residual_course.checks.report import Check, Property, PropertyFailed, run_properties
from residual_course.checks.subjects import name_of, random_tensor
from residual_course.data import DataSet
from residual_course.training import evaluate

Surgery = Callable[[nn.Sequential, int], nn.Module]


def _chain(device: torch.device, count: int = 5) -> nn.Sequential:
    """Distinct, shape-keeping blocks whose order matters (each one a different random linear map and a ReLU)."""
    generator = torch.Generator().manual_seed(0)
    blocks = []
    for _ in range(count):
        layer = nn.Linear(6, 6)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(6, 6, generator=generator))
        blocks.append(nn.Sequential(layer, nn.ReLU()))
    return nn.Sequential(*blocks).to(device)


check_delete_block = Check("delete_block", "Check a learner's delete_block(blocks, index) -> a new nn.Sequential of "
                            "the same blocks without the one at index (the original left as it was, no copies) and "
                            "print one PASS/FAIL line per property.")


@check_delete_block.property("left out", "the result runs every block but the one at index, in order")
def _expect_left_out(surgery: Surgery, device: torch.device) -> None:
    """The result runs every block but the one at `index`, in order, on the same input."""
    name = name_of(surgery, "delete_block")
    for index in (0, 2, 4):
        blocks = _chain(device)
        x = random_tensor(device, 3, 6)
        result = surgery(blocks, index)
        if not isinstance(result, nn.Module):
            raise PropertyFailed(f"{name}(blocks, {index}) returned a {type(result).__name__}, not a module: return "
                                 "an nn.Sequential of the remaining blocks")
        expected = x
        for position, block in enumerate(blocks):
            if position != index:
                expected = block(expected)
        with torch.no_grad():
            got = result(x)
        if not torch.allclose(got, expected, atol=1e-6):
            hint = ("it still runs block {index}" if torch.allclose(got, blocks(x), atol=1e-6)
                    else "keep every other block, in the original order")
            raise PropertyFailed(f"{name}(blocks, {index}) does not compute the blocks without block {index}: "
                                 + hint.format(index=index))


@check_delete_block.property("original kept", "`blocks` is left as it was, and the result shares its modules (no "
                             "copies)")
def _expect_original_kept(surgery: Surgery, device: torch.device) -> None:
    """`blocks` itself still runs all its blocks afterwards, and the result shares their (trained) weights."""
    name = name_of(surgery, "delete_block")
    blocks = _chain(device)
    x = random_tensor(device, 3, 6)
    with torch.no_grad():
        before = blocks(x)
        result = surgery(blocks, 1)
        if not torch.allclose(blocks(x), before, atol=1e-6):
            raise PropertyFailed(f"after {name}(blocks, 1), `blocks` computes something else: build a new "
                                 "nn.Sequential and leave the one you were given as it was")
        blocks[0][0].weight.mul_(2)  # a change to a kept block must show in the result: the same module
        expected = x
        for position, block in enumerate(blocks):
            if position != 1:
                expected = block(expected)
        if not torch.allclose(result(x), expected, atol=1e-6):
            raise PropertyFailed(f"{name} copied the blocks: the new sequence must hold the very same modules (the "
                                 "trained ones), not copies; pass the blocks themselves to nn.Sequential")


def more_robust(networks: dict[str, nn.Module], data: DataSet, indices: Sequence[int]) -> tuple[str, dict]:
    """Which trained network keeps more of its test accuracy with its worst single block deleted, and by how much.

    Each network must keep its blocks in `.blocks` (an nn.Sequential) between a `.stem` and a `.head`.
    """
    kept = {}
    for family, network in networks.items():
        whole = evaluate(network, data.test)[1]
        cut = [evaluate(nn.Sequential(network.stem, nn.Sequential(*(b for i, b in enumerate(network.blocks)
                                                                        if i != index)), network.head),
                        data.test)[1] for index in indices]
        kept[family] = min(cut) / whole
    return max(kept, key=kept.get), kept


def check_prediction(prediction: object, networks: dict[str, nn.Module], data: DataSet, indices: Sequence[int],
                     choices: Sequence[str] = ("plain", "residual")) -> None:
    """Compare the learner's prediction with what deleting blocks of the trained networks measures."""
    def test(device: torch.device) -> None:
        if prediction not in choices:
            raise PropertyFailed(f"prediction is {prediction!r}: set it to one of {', '.join(map(repr, choices))}")
        measured, kept = more_robust(networks, data, indices)
        detail = ", ".join(f"{family} keeps {fraction:.0%}" for family, fraction in kept.items())
        if prediction != measured:
            raise PropertyFailed(f"you predicted {prediction!r}, the measurement says {measured!r} ({detail} of its "
                                 "accuracy with its worst block deleted): read the explanation below")
        print(f"        measured: {detail}")

    run_properties("your prediction", [Property("prediction", "the prediction matches the measurement", test)])
