"""Checks for lesson 02's batch normalisation written from scratch, judged against nn.BatchNorm1d's behaviour.

The learner's `BatchNorm(num_features, eps=1e-5, momentum=0.1)` normalises (N, C) inputs. Each property feeds the
learner's module and an nn.BatchNorm1d the same batches, from the same state, and compares what comes out; a
mismatch is matched against the usual mistakes (biased variance in the running estimate, momentum the wrong way
round, batch statistics in eval mode, eps outside the square root...) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks.report import Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, expect_device_and_gradient, name_of, random_tensor, run

Factory = Callable[..., nn.Module]
TOLERANCE = 1e-5


def _pair(factory: Factory, features: int, device: torch.device, **options: float) -> tuple[nn.Module, nn.Module]:
    """The learner's module and the reference, built with the same arguments, on the device."""
    call = f"{name_of(factory, 'BatchNorm')}({features}{''.join(f', {k}={v}' for k, v in options.items())})"
    yours = build(factory, features, device=device, call=call, **options)
    return yours, nn.BatchNorm1d(features, **options).to(device)


def _batches(device: torch.device, features: int, count: int = 4, size: int = 16) -> list[Tensor]:
    """Batches with a mean and a scale of their own per feature, so running estimates have something to track."""
    scale = random_tensor(device, features, seed=3).abs() * 3 + 0.5
    shift = random_tensor(device, features, seed=4) * 2
    return [random_tensor(device, size, features, seed=10 + i) * scale + shift for i in range(count)]


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=TOLERANCE, rtol=1e-4)


def _expect_train_output(factory: Factory, device: torch.device) -> None:
    """In train() mode: batch mean and biased batch variance, eps inside the square root, then gamma and beta."""
    yours, reference = _pair(factory, 6, device)
    call = f"{name_of(factory, 'BatchNorm')}(6)"
    x = _batches(device, 6, count=1)[0]
    x[:, 0] = 1 + 1e-3 * x[:, 0]  # a nearly constant feature, where eps matters
    with torch.no_grad():
        got, expected = run(yours.train(), x, call), reference.train()(x)
    if got.shape != x.shape:
        raise PropertyFailed(f"{call} maps {tuple(x.shape)} to {tuple(got.shape)}: normalisation keeps the shape")
    if _close(got, expected):
        return
    mean, var = x.mean(0), x.var(0, unbiased=False)
    hints = [
        ((x - mean) / torch.sqrt(x.var(0, unbiased=True) + 1e-5), "normalise with the biased batch variance "
         "(divide by N, x.var(0, unbiased=False)); the unbiased one is for the running estimate"),
        ((x - mean) / (torch.sqrt(var) + 1e-5), "eps goes inside the square root: (x - mean) / sqrt(var + eps)"),
        ((x - mean) / torch.sqrt(var + 1e-5) * 0, "the output is zero: start gamma at 1 (and beta at 0)"),
        (x - mean, "divide by the batch standard deviation too"),
        ((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5),
         "take the statistics over the batch (dim 0), one mean and variance per feature, not over features"),
    ]
    for candidate, hint in hints:
        if _close(got, candidate):
            raise PropertyFailed(f"in train() mode {call} does not normalise like BatchNorm: {hint}")
    raise PropertyFailed(f"in train() mode {call} differs from nn.BatchNorm1d(6) by up to "
                         f"{(got - expected).abs().max().item():.2e}: y = gamma * (x - mean) / sqrt(var + eps) + beta "
                         "with the batch's mean and (biased) variance per feature")


def _expect_running_estimates(factory: Factory, device: torch.device) -> None:
    """After train() batches, eval() outputs use running estimates updated like BatchNorm's (momentum, unbiased)."""
    for momentum in (0.1, 0.3):
        yours, reference = _pair(factory, 5, device, momentum=momentum)
        call = f"{name_of(factory, 'BatchNorm')}(5, momentum={momentum})"
        batches = _batches(device, 5)
        with torch.no_grad():
            for x in batches:
                run(yours.train(), x, call)
                reference.train()(x)
            probe = random_tensor(device, 7, 5, seed=20)
            got, expected = run(yours.eval(), probe, call), reference.eval()(probe)
        if _close(got, expected):
            continue
        raise PropertyFailed(f"after {len(batches)} train() batches, {call} in eval() mode differs from "
                             f"nn.BatchNorm1d: {_running_hint(yours, batches, probe, momentum, call)}")


def _running_hint(module: nn.Module, batches: list[Tensor], probe: Tensor, momentum: float, call: str) -> str:
    """Which usual mistake in the running estimates reproduces the learner's eval() output."""
    def simulate(rate: float, unbiased: bool) -> Tensor:
        mean, var = torch.zeros(probe.shape[1], device=probe.device), torch.ones(probe.shape[1], device=probe.device)
        for x in batches:
            mean = (1 - rate) * mean + rate * x.mean(0)
            var = (1 - rate) * var + rate * x.var(0, unbiased=unbiased)
        return (probe - mean) / torch.sqrt(var + 1e-5)

    with torch.no_grad():
        got = run(module.eval(), probe, call)
    if _close(got, simulate(momentum, unbiased=False)):
        return ("update the running variance with the unbiased batch variance (x.var(0, unbiased=True)), as PyTorch "
                "does; normalise with the biased one")
    if _close(got, simulate(1 - momentum, unbiased=True)):
        return ("the momentum is the weight of the *new* batch: running = (1 - momentum) * running + momentum * "
                "batch statistic")
    if _close(got, (probe - probe.mean(0)) / torch.sqrt(probe.var(0, unbiased=False) + 1e-5)):
        return "in eval() mode use the running estimates, not the batch's statistics (check self.training)"
    if _close(got, probe / torch.sqrt(torch.ones_like(probe) + 1e-5)):
        return "the running estimates never change: update them in train() mode (in place, without gradients)"
    return ("start the running mean at 0 and the running variance at 1, and update both in every train() forward: "
            "running = (1 - momentum) * running + momentum * batch statistic (the unbiased variance)")


def _expect_eval_independence(factory: Factory, device: torch.device) -> None:
    """In eval() mode one example's output does not depend on the rest of the batch."""
    yours, _ = _pair(factory, 4, device)
    call = f"{name_of(factory, 'BatchNorm')}(4)"
    x = _batches(device, 4, count=1)[0]
    with torch.no_grad():
        run(yours.train(), x, call)
        yours.eval()
        alone, together = run(yours, x[:1], call), run(yours, torch.cat([x[:1], 5 * x[1:] - 3]), call)[:1]
    if not _close(alone, together):
        raise PropertyFailed(f"in eval() mode {call} gives an example a different output when the rest of the batch "
                             "changes: eval() uses the running estimates, never the batch's statistics")


def _expect_learnable_affine(factory: Factory, device: torch.device) -> None:
    """gamma and beta are parameters of shape (C,) that get gradients; the running estimates move with .to()."""
    yours, _ = _pair(factory, 6, device)
    call = f"{name_of(factory, 'BatchNorm')}(6)"
    shapes = sorted(tuple(p.shape) for p in yours.parameters())
    if shapes != [(6,), (6,)]:
        raise PropertyFailed(f"{call} has parameters of shapes {shapes}, expected two of shape (6,): the scale gamma "
                             "(start at 1) and the shift beta (start at 0), as nn.Parameter")
    x = _batches(device, 6, count=1)[0]
    run(yours.train(), x, call).pow(2).sum().backward()
    if any(p.grad is None or p.grad.abs().sum() == 0 for p in yours.parameters()):
        raise PropertyFailed(f"gamma or beta of {call} gets no gradient: use them in forward (y = gamma * x_hat + "
                             "beta), and keep them out of torch.no_grad()")
    if len(list(yours.buffers())) < 2:
        raise PropertyFailed(f"{call} keeps fewer than two buffers: register the running mean and variance with "
                             "self.register_buffer(...), so that .to(device) moves them and state_dict saves them")


def batch_norm_properties(factory: Factory) -> list[Property]:
    """Properties of BatchNorm(num_features, eps=1e-5, momentum=0.1) on (N, C) inputs."""
    def device_property(device: torch.device) -> None:
        yours, _ = _pair(factory, 6, device)
        expect_device_and_gradient(yours.train(), _batches(device, 6, count=1)[0], device,
                                   f"{name_of(factory, 'BatchNorm')}(6)")

    return [
        Property("train", "train(): normalises with the batch's mean and variance, then scales and shifts",
                 lambda d: _expect_train_output(factory, d)),
        Property("running", "train() updates running estimates like nn.BatchNorm1d (momentum, unbiased variance)",
                 lambda d: _expect_running_estimates(factory, d)),
        Property("eval", "eval(): one example's output ignores the rest of the batch",
                 lambda d: _expect_eval_independence(factory, d)),
        Property("parameters", "learnable gamma and beta, running estimates as buffers",
                 lambda d: _expect_learnable_affine(factory, d)),
        Property("device", "runs on the device and passes the gradient to its input", device_property),
    ]


def check_batch_norm(factory: Factory, only: str | list[str] | None = None) -> None:
    """Check a learner's BatchNorm against nn.BatchNorm1d and print one PASS/FAIL line per property."""
    run_properties(name_of(factory, "BatchNorm"), batch_norm_properties(factory), only)
