"""Checks for lesson 02: BatchNorm written from scratch, a plain Linear-BatchNorm-ReLU network, a deeper plain network
that computes what a shallower one does, and the degradation diagnosis from several seeds, judged by behaviour.

The learner's `BatchNorm(num_features, eps=1e-5, momentum=0.1)` normalises (N, C) inputs. Each property feeds the
learner's module and an nn.BatchNorm1d the same batches, from the same state, and compares what comes out; a
mismatch is matched against the usual mistakes (biased variance in the running estimate, momentum the wrong way
round, batch statistics in eval mode, eps outside the square root...) to say which one it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import (
    build,
    expect_device_and_gradient,
    name_of,
    random_tensor,
    randomize_weights,
    run,
)
from residual_course.probes import trace_forward
from residual_course.training import History

ModelBuilder = Callable[[int, int], nn.Module]
Diagnosis = Callable[[list[History], list[History]], object]
INIT_TOLERANCE = 0.1  # relative error allowed on each layer's weight standard deviation
BatchNormFactory = Callable[..., nn.Module]
TOLERANCE = 2e-4  # BatchNorm: yours against nn.BatchNorm1d (float32 on a nearly constant feature differs by 4e-5)


def kaiming_std(fan_in: int) -> float:
    """The standard deviation Kaiming (He) initialisation gives a ReLU layer: sqrt(2 / fan_in)."""
    return math.sqrt(2 / fan_in)


# ---------------------------------------------------------------- BatchNorm

check_batch_norm = Check("BatchNorm", "Check a learner's BatchNorm(num_features, eps=1e-5, momentum=0.1) on (N, C) "
                         "inputs against nn.BatchNorm1d and print one PASS/FAIL line per property.")


def _pair(factory: BatchNormFactory, features: int, device: torch.device,
          **options: float) -> tuple[nn.Module, nn.Module]:
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


@check_batch_norm.property("train", "train(): normalises with the batch's mean and variance, then scales and shifts")
def _expect_train_output(factory: BatchNormFactory, device: torch.device) -> None:
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


@check_batch_norm.property("running", "train() updates running estimates like nn.BatchNorm1d (momentum, unbiased "
                           "variance)")
def _expect_running_estimates(factory: BatchNormFactory, device: torch.device) -> None:
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


@check_batch_norm.property("eval", "eval(): one example's output ignores the rest of the batch")
def _expect_eval_independence(factory: BatchNormFactory, device: torch.device) -> None:
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


@check_batch_norm.property("parameters", "learnable gamma and beta, running estimates as buffers")
def _expect_learnable_affine(factory: BatchNormFactory, device: torch.device) -> None:
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


@check_batch_norm.property("device", "runs on the device and passes the gradient to its input")
def _expect_batch_norm_on_device(factory: BatchNormFactory, device: torch.device) -> None:
    """Parameters, buffers and output live on the course device, and the loss gradient reaches the input."""
    yours, _ = _pair(factory, 6, device)
    expect_device_and_gradient(yours.train(), _batches(device, 6, count=1)[0], device,
                               f"{name_of(factory, 'BatchNorm')}(6)")


# ---------------------------------------------------------------- plain_mlp

check_plain_mlp = Check("plain_mlp", "Check a learner's plain_mlp(depth, width) (Flatten, (depth - 1) x "
                        "[Linear-BN-ReLU], Linear to 10, Kaiming init) and print one PASS/FAIL line per property.")


def _call(builder: ModelBuilder, depth: int, width: int) -> str:
    """The learner's call, for messages: plain_mlp(5, 16)."""
    return f"{name_of(builder, 'plain_mlp')}({depth}, {width})"


def _build(builder: ModelBuilder, depth: int, width: int, device: torch.device) -> nn.Module:
    """Call the learner's builder and move the model to the device, insisting on an nn.Module."""
    return build(builder, depth, width, device=device, call=_call(builder, depth, width))


def _linear_calls(model: nn.Module, inputs: Tensor) -> list:
    """The Linear layers that run, in the order they run."""
    return trace_forward(model, inputs, (nn.Linear,))


@check_plain_mlp.property("depth", "`depth` Linear layers, 784 -> width -> ... -> 10, output (N, 10)")
def _expect_depth(builder: ModelBuilder, device: torch.device) -> None:
    """`depth` Linear layers run, 784 -> width -> ... -> width -> 10, and the output is (N, 10)."""
    for depth, width in ((5, 16), (2, 16), (8, 32)):
        call = _call(builder, depth, width)
        model = _build(builder, depth, width, device).eval()
        inputs = random_tensor(device, 16, 1, 28, 28)
        with torch.no_grad():
            output = model(inputs)
        if tuple(output.shape) != (16, 10):
            raise PropertyFailed(f"{call} maps {tuple(inputs.shape)} to {tuple(output.shape)}, expected (16, 10): "
                                 "flatten the images, then end with a Linear layer to 10 classes")
        linears = _linear_calls(model, inputs)
        if len(linears) != depth:
            raise PropertyFailed(f"{call} runs {len(linears)} Linear layers, expected {depth}: depth counts every "
                                 "Linear layer, the output layer included, so build depth - 1 = "
                                 f"{depth - 1} hidden Linear-BatchNorm-ReLU units, then one Linear to 10 classes")
        sizes = [(call.input_shape[-1], call.output_shape[-1]) for call in linears]
        expected = [(784, width)] + [(width, width)] * (depth - 2) + [(width, 10)]
        if sizes != expected:
            raise PropertyFailed(f"{call} has Linear layers {sizes}, expected {expected}: every hidden layer has "
                                 "`width` units")


@check_plain_mlp.property("units", "each hidden Linear is followed by BatchNorm1d, then ReLU")
def _expect_units(builder: ModelBuilder, device: torch.device) -> None:
    """Each hidden Linear is followed by BatchNorm1d, then ReLU; the output Linear by nothing."""
    depth, width = 5, 16
    call = _call(builder, depth, width)
    model = _build(builder, depth, width, device).train()
    inputs = random_tensor(device, 16, 1, 28, 28)
    order = ["Linear" if isinstance(c.module, nn.Linear) else "BatchNorm1d"
             for c in trace_forward(model, inputs, (nn.Linear, nn.BatchNorm1d))]
    expected = ["Linear", "BatchNorm1d"] * order.count("BatchNorm1d") + ["Linear"]  # whatever the depth
    if "BatchNorm1d" not in order:
        raise PropertyFailed(f"{call} runs no nn.BatchNorm1d: put nn.BatchNorm1d(width) after each hidden Linear "
                             "layer (it keeps every layer's pre-activations normalised during training)")
    if order != expected:
        raise PropertyFailed(f"{call} runs {' -> '.join(order)}: put one BatchNorm1d right after each hidden "
                             "Linear layer, and none after the output layer")
    later_linears = _linear_calls(model, inputs)[1:]
    if any(c.input_min < 0 for c in later_linears):
        raise PropertyFailed(f"in {call} a Linear layer receives negative inputs: the order in each hidden unit is "
                             "Linear -> BatchNorm1d -> ReLU, so the next layer sees the ReLU's output")


@check_plain_mlp.property("no skip", "plain: zeroing a middle layer cuts every path from input to output")
def _expect_no_skip(builder: ModelBuilder, device: torch.device) -> None:
    """With one middle Linear layer zeroed, every input gives the same output: nothing bypasses a layer."""
    depth, width = 6, 16
    model = _build(builder, depth, width, device).eval()
    inputs = random_tensor(device, 16, 1, 28, 28)
    middle = _linear_calls(model, inputs)[depth // 2].module
    with torch.no_grad():
        middle.weight.zero_()
        output = model(inputs)
    if not torch.allclose(output, output[:1].expand_as(output), atol=1e-5):
        raise PropertyFailed("with a middle Linear layer's weights zeroed the output still depends on the input, so "
                             "some path skips that layer: a plain network feeds each layer only the previous "
                             "layer's output (no x + f(x), no concatenation)")


@check_plain_mlp.property("init", "Kaiming init: weight std sqrt(2 / fan_in), zero biases")
def _expect_kaiming_init(builder: ModelBuilder, device: torch.device) -> None:
    """Every Linear weight has std sqrt(2 / fan_in) (Kaiming, ReLU gain) and mean 0; every bias is 0."""
    depth, width = 4, 128
    model = _build(builder, depth, width, device)
    linears = [c.module for c in _linear_calls(model.eval(), random_tensor(device, 16, 1, 28, 28))]
    for index, layer in enumerate(linears, start=1):
        fan_in = layer.weight.shape[1]
        std, target = layer.weight.std().item(), kaiming_std(fan_in)
        where = f"Linear layer {index} of {len(linears)} ({fan_in} -> {layer.weight.shape[0]})"
        if abs(std / target - 1) > INIT_TOLERANCE or abs(layer.weight.mean().item()) > 0.2 * target:
            if abs(std * math.sqrt(3 * fan_in) - 1) < INIT_TOLERANCE:
                hint = "that is PyTorch's default init (std 1/sqrt(3 fan_in)), too small for ReLU"
            elif abs(std / kaiming_std(layer.weight.shape[0]) - 1) < INIT_TOLERANCE:
                hint = "that scales by fan_out: pass mode='fan_in'"
            else:
                hint = "check the gain: nonlinearity='relu' gives sqrt(2)"
            raise PropertyFailed(f"{where} has weight std {std:.4f}, Kaiming init gives sqrt(2/{fan_in}) = "
                                 f"{target:.4f}: {hint}. Use nn.init.kaiming_normal_(weight, mode='fan_in', "
                                 "nonlinearity='relu') on every Linear layer")
        if layer.bias is not None and layer.bias.abs().max().item() != 0:
            raise PropertyFailed(f"{where} has non-zero biases: start them at zero with nn.init.zeros_(bias)")


@check_plain_mlp.property("device", "runs on the device and passes the gradient to its input")
def _expect_device_and_gradient(builder: ModelBuilder, device: torch.device) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    model = _build(builder, 4, 16, device)
    expect_device_and_gradient(model, random_tensor(device, 16, 1, 28, 28), device, _call(builder, 4, 16))


# ---------------------------------------------------------------- deepen(model, depth)

DeepenFunction = Callable[[nn.Module, int], nn.Module]

check_deepen = Check("deepen", "Check a learner's deepen(model, depth): a plain network of `depth` Linear layers that "
                     "computes, in eval mode, exactly what the plain network `model` computes; print one PASS/FAIL "
                     "line per property.")


def _shallow_network(device: torch.device, depth: int, width: int, seed: int) -> nn.Module:
    """A plain network laid out as lesson 02's (Flatten, Linear-BN-ReLU units, Linear), with random weights and
    running statistics, as after training, in eval mode."""
    layers: list[nn.Module] = [nn.Flatten()]
    for index in range(depth - 1):
        layers += [nn.Linear(784 if index == 0 else width, width), nn.BatchNorm1d(width), nn.ReLU()]
    network = nn.Sequential(*layers, nn.Linear(width, 10)).to(device)
    randomize_weights(network, seed)
    return network.eval()


def _deepened(function: DeepenFunction, model: nn.Module, depth: int, device: torch.device) -> nn.Module:
    """Call the learner's function, insisting on a module of the learner's making, in eval mode on the device."""
    call = f"{name_of(function, 'deepen')}(model, {depth})"
    return build(function, model, depth, device=device, call=call).eval()


@check_deepen.property("depth", "`depth` Linear layers, plain, and the original network left as it was")
def _expect_deepened_depth(function: DeepenFunction, device: torch.device) -> None:
    """The result runs `depth` Linear layers, zeroing a middle one cuts every path, and `model` is unchanged."""
    for shallow, depth, width in ((3, 7, 12), (4, 9, 20)):
        model = _shallow_network(device, shallow, width, seed=depth)
        before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        deep = _deepened(function, model, depth, device)
        inputs = random_tensor(device, 8, 1, 28, 28, seed=depth)
        linears = _linear_calls(deep, inputs)
        if len(linears) != depth:
            raise PropertyFailed(f"deepen(model, {depth}) runs {len(linears)} Linear layers, expected {depth}: add "
                                 f"{depth - shallow} identity units (Linear-BatchNorm-ReLU) to the {shallow} layers of "
                                 "model")
        if any(not torch.equal(before[name], tensor) for name, tensor in model.state_dict().items()):
            raise PropertyFailed("deepen changed the network it was given: copy its layers (copy.deepcopy) before "
                                 "changing anything")
        with torch.no_grad():
            linears[len(linears) // 2].module.weight.zero_()
            output = deep(inputs)
        if not torch.allclose(output, output[:1].expand_as(output), atol=1e-5):
            raise PropertyFailed("with a middle Linear layer zeroed the deepened network's output still depends on its "
                                 "input: it must stay plain, each layer fed only by the one before it")


@check_deepen.property("same function", "in eval mode it computes exactly what `model` computes")
def _expect_same_function(function: DeepenFunction, device: torch.device) -> None:
    """On random images the deepened network's logits equal the original network's (eval mode)."""
    for shallow, depth, width in ((3, 12, 12), (5, 14, 24)):
        model = _shallow_network(device, shallow, width, seed=10 + depth)
        deep = _deepened(function, model, depth, device)
        inputs = random_tensor(device, 16, 1, 28, 28, seed=10 + depth)
        with torch.no_grad():
            expected, got = model(inputs), deep(inputs)
        if got.shape != expected.shape:
            raise PropertyFailed(f"deepen(model, {depth}) maps images to {tuple(got.shape)}, model to "
                                 f"{tuple(expected.shape)}: keep model's first and last layers as they are")
        gap = (got - expected).abs().max().item() / (expected.abs().max().item() + 1e-8)
        if gap < 1e-5:  # identity units are exact up to float32 rounding (about 1e-7 each)
            continue
        hint = ("an inserted BatchNorm is not quite the identity in eval mode: it computes gamma (x - running_mean) / "
                "sqrt(running_var + eps) + beta, so with mean 0 and variance 1 it needs gamma = sqrt(1 + eps)"
                if gap < 1e-3 else
                "each inserted unit must pass its input through unchanged: Linear with the identity matrix and zero "
                "bias, a BatchNorm that is the identity in eval mode, then ReLU (the identity on the non-negative "
                "output of the ReLU before it); insert them after the last hidden unit, before the output layer")
        raise PropertyFailed(f"deepen(model, {depth})'s logits differ from model's by up to {gap:.1%} of their size: "
                             f"{hint}")


# ---------------------------------------------------------------- diagnose

DEGRADATION, OVERFITTING, HEALTHY, UNDECIDED = "degradation", "overfitting", "deeper is better", "too close to call"


def synthetic_history(train_loss: list[float], test_loss: list[float]) -> History:
    """A History with only the loss curves filled in (accuracies follow them roughly), for diagnosis exercises."""
    return History(train_loss=list(train_loss), test_loss=list(test_loss),
                   train_accuracy=[math.exp(-loss) for loss in train_loss],
                   test_accuracy=[math.exp(-loss) for loss in test_loss])


# (expected diagnosis, what the seeds show, shallow net's final (train, test) loss per seed, deep net's)
_DIAGNOSES = [
    (DEGRADATION, "every deep seed ends with a higher training loss (0.66 to 0.73 against 0.30 to 0.32)",
     ([0.30, 0.32, 0.31], [0.45, 0.47, 0.44]), ([0.70, 0.66, 0.73], [0.75, 0.72, 0.78])),
    (DEGRADATION, "every deep seed trains worse (0.38 to 0.40 against 0.29 to 0.31), though it tests about the same",
     ([0.30, 0.29, 0.31], [0.46, 0.44, 0.45]), ([0.39, 0.40, 0.38], [0.45, 0.46, 0.44])),
    (OVERFITTING, "every deep seed trains better (0.04 to 0.06) but tests worse (0.78 to 0.82 against 0.44 to 0.46)",
     ([0.30, 0.32, 0.31], [0.45, 0.44, 0.46]), ([0.05, 0.06, 0.04], [0.80, 0.78, 0.82])),
    (HEALTHY, "every deep seed trains (0.19 to 0.21) and tests (0.34 to 0.36) better",
     ([0.30, 0.32, 0.31], [0.45, 0.44, 0.46]), ([0.20, 0.21, 0.19], [0.35, 0.36, 0.34])),
    (UNDECIDED, "the seeds disagree: the deep seeds' training losses (0.29 to 0.35) straddle the shallow ones' "
     "(0.30 to 0.36)", ([0.30, 0.36, 0.33], [0.45, 0.50, 0.47]), ([0.34, 0.29, 0.35], [0.47, 0.46, 0.49])),
    (UNDECIDED, "one deep seed ends far higher (0.60), the other two level with the shallow seeds (0.30, 0.31): the "
     "seeds disagree", ([0.30, 0.32, 0.31], [0.45, 0.47, 0.44]), ([0.31, 0.30, 0.60], [0.46, 0.45, 0.70])),
]


def _histories(losses: tuple[list[float], list[float]], jitter: list[float]) -> list[History]:
    """One History per seed ending at these final (train, test) losses, nudged by the run's salt, in salted order."""
    train, test = losses
    runs = [synthetic_history([2.0, 1.0, t + j], [2.0, 1.1, s + j]) for t, s, j in zip(train, test, jitter,
                                                                                       strict=True)]
    order = sorted(range(len(runs)), key=lambda index: jitter[index])
    return [runs[index] for index in order]


def _expect_diagnoses(function: Diagnosis, device: torch.device, decided: bool) -> None:
    """Run the cases where the seeds agree (or those where they do not) and explain the first wrong answer."""
    for index, (expected, description, shallow, deep) in enumerate(_DIAGNOSES):
        if (expected != UNDECIDED) != decided:
            continue
        jitter = (random_tensor(device, 6, seed=100 + index) * 0.002).tolist()  # well inside every case's margins
        got = function(_histories(shallow, jitter[:3]), _histories(deep, jitter[3:]))
        if got != expected:
            raise PropertyFailed(f"{description}: expected {expected!r}, got {got!r}. Decide from the final losses "
                                 "of every seed: a difference counts only where all seeds agree on it; training loss "
                                 "first (degradation), then test loss (overfitting, or deeper is better)")


check_diagnose = Check("diagnose", "Check a learner's diagnose(shallow, deep), each a list of one History per seed, "
                       "-> \"degradation\" | \"overfitting\" | \"deeper is better\" | \"too close to call\", and print "
                       "one PASS/FAIL line per property.")


@check_diagnose.property("decided", "where every seed agrees: degradation, overfitting or deeper is better")
def _expect_clear_cases_diagnosed(function: Diagnosis, device: torch.device) -> None:
    """Every seed tells the same story: the diagnosis names it, from the final training loss, then the test loss."""
    _expect_diagnoses(function, device, decided=True)


@check_diagnose.property("seeds", "where the seeds disagree: too close to call")
def _expect_disagreeing_seeds_undecided(function: Diagnosis, device: torch.device) -> None:
    """When the seeds' final losses overlap, or one seed alone makes the difference, nothing is decided."""
    _expect_diagnoses(function, device, decided=False)
