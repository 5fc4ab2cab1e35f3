"""Checks for lesson 04: the autocorrelation of a signal, a filter-normalised direction in weight space, and the
gradient that one path through a residual network carries, judged by what the learner's functions return.

Every probe is drawn from this run's salt, at sizes that change from run to run; each check holds its own
reference, which nothing in the course package exposes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import name_of, probe_size, random_tensor, randomize_weights, salted_seed

Autocorrelation = Callable[[Tensor, int], Tensor]
DirectionFunction = Callable[[nn.Module], Sequence[Tensor]]
PathGradient = Callable[[Sequence[nn.Module], Tensor, Sequence[int], Tensor], Tensor]
TOLERANCE = 1e-4


def _tensor(value: object, call: str, what: str) -> Tensor:
    """The learner's result as a tensor, or a FAIL that says what to return."""
    if not isinstance(value, Tensor):
        raise PropertyFailed(f"{call} returned a {type(value).__name__}; return {what}")
    return value.detach()


# ---------------------------------------------------------------- autocorrelation(g, max_lag)

check_autocorrelation = Check("function", "Check a learner's autocorrelation(g, max_lag): the autocorrelation of a "
                              "1-D signal at lags 0 to max_lag, and print one PASS/FAIL line per property.")


def _lagged_sums(x: Tensor, max_lag: int) -> Tensor:
    """sum_i x_i x_{i+k} for k = 0..max_lag: the numerator of every autocorrelation below, centred or not."""
    return torch.stack([(x[: len(x) - k] * x[k:]).sum() for k in range(max_lag + 1)])


def _reference_autocorrelation(g: Tensor, max_lag: int) -> Tensor:
    """r_k = sum_i (g_i - mean)(g_{i+k} - mean) / sum_i (g_i - mean)^2, k = 0..max_lag, in float64."""
    sums = _lagged_sums(g.double() - g.double().mean(), max_lag)
    return sums / sums[0]


def _signals(device: torch.device) -> list[tuple[str, Tensor, int]]:
    """Salted probes: white noise far from zero, a random walk (brown noise, smooth), and a short one."""
    length, max_lag = probe_size(40, 90, "autocorrelation length"), probe_size(3, 12, "autocorrelation lag")
    noise = random_tensor(device, length, seed=21)
    walk = random_tensor(device, length + 7, seed=22).cumsum(0)
    short = random_tensor(device, probe_size(12, 20, "short length"), seed=23) * 0.01
    return [("white noise around 3", 2 * noise + 3, max_lag), ("a random walk", walk, max_lag + 2),
            ("a short signal of small numbers", short, 4)]


def _acf_call(function: Autocorrelation, length: int, max_lag: int) -> str:
    return f"{name_of(function, 'autocorrelation')}(g of {length} values, max_lag={max_lag})"


def _run_autocorrelation(function: Autocorrelation, g: Tensor, max_lag: int) -> Tensor:
    """The learner's result on a copy of g, refusing one that changed g or is not max_lag + 1 numbers."""
    call, given = _acf_call(function, len(g), max_lag), g.clone()
    result = _tensor(function(given, max_lag), call, f"a tensor of {max_lag + 1} numbers, r_0 to r_{max_lag}")
    if not torch.equal(given, g):
        raise PropertyFailed(f"{call} changed g itself (an in-place operation such as g -= g.mean()): work on a "
                             "new tensor, g - g.mean(), so the caller's signal stays as it was")
    if tuple(result.shape) != (max_lag + 1,):
        raise PropertyFailed(f"{call} returned shape {tuple(result.shape)}, expected ({max_lag + 1},): one number "
                             f"per lag, from 0 to max_lag = {max_lag} included")
    if result.device.type != g.device.type:
        raise PropertyFailed(f"{call} returned its result on {result.device}, expected {g.device.type}: compute "
                             "on g's own device")
    return result.double()


def _acf_hint(result: Tensor, g: Tensor, max_lag: int) -> str:
    """What the learner's numbers match instead of the autocorrelation, in words."""
    g64 = g.double()
    n = len(g)
    uncentred = _lagged_sums(g64, max_lag)
    plain = uncentred / uncentred[0]
    per_lag = _reference_autocorrelation(g, max_lag) * n / torch.tensor([n - k for k in range(max_lag + 1)],
                                                                          dtype=torch.float64, device=g.device)
    shifted = _reference_autocorrelation(g, max_lag + 1)[1:]
    covariance = _lagged_sums(g64 - g64.mean(), max_lag)
    pearson = torch.stack([torch.ones((), dtype=torch.float64, device=g.device)] + [
        torch.corrcoef(torch.stack([g64[: n - k], g64[k:]]))[0, 1] for k in range(1, max_lag + 1)])
    wrong = {
        "the mean is not subtracted: centre the signal first, g - g.mean(), in the numerator and the denominator":
            plain,
        "each lag is divided by its own number of pairs (n - k); this autocorrelation divides every lag by the "
        "same sum over all n values, sum_i (g_i - mean)^2": per_lag,
        "your lags are shifted by one: the first number is lag 0 (r_0 = 1), the last lag max_lag": shifted,
        "the numbers are not divided by sum_i (g_i - mean)^2: the autocorrelation is 1 at lag 0": covariance,
        "that is the correlation of the two overlapping slices (each with its own mean and spread); use the whole "
        "signal's mean and the sum over all n values in the denominator": pearson,
    }
    for words, value in wrong.items():
        if torch.allclose(result, value, atol=TOLERANCE, rtol=TOLERANCE):
            return words
    return "compute r_k = sum_i (g_i - mean)(g_{i+k} - mean) / sum_i (g_i - mean)^2 for k = 0 .. max_lag"


@check_autocorrelation.property("shape", "one number per lag, 0 to max_lag, r_0 = 1, g left as it was")
def _expect_shape(function: Autocorrelation, device: torch.device) -> None:
    """max_lag + 1 numbers on g's device, the first one 1."""
    for _, g, max_lag in _signals(device):
        result = _run_autocorrelation(function, g, max_lag)
        if abs(result[0].item() - 1) > TOLERANCE:
            raise PropertyFailed(f"{_acf_call(function, len(g), max_lag)} gives r_0 = {result[0].item():.4g}: at "
                                 "lag 0 a signal is perfectly correlated with itself, r_0 = 1 (the numerator is "
                                 "then the denominator)")


@check_autocorrelation.property("definition", "r_k = sum (g_i - mean)(g_i+k - mean) / sum (g_i - mean)^2")
def _expect_definition(function: Autocorrelation, device: torch.device) -> None:
    """On white noise with an offset, a random walk and small numbers, the learner's values are the reference's."""
    for name, g, max_lag in _signals(device):
        result, expected = _run_autocorrelation(function, g, max_lag), _reference_autocorrelation(g, max_lag)
        if not torch.allclose(result, expected, atol=TOLERANCE, rtol=TOLERANCE):
            lag = int((result - expected).abs().argmax())
            raise PropertyFailed(f"on {name}, {_acf_call(function, len(g), max_lag)} gives r_{lag} = "
                                 f"{result[lag].item():.4f}, expected {expected[lag].item():.4f}: "
                                 f"{_acf_hint(result, g, max_lag)}")


# ---------------------------------------------------------------- filter_normalized_direction(model)

check_filter_direction = Check("function", "Check a learner's filter_normalized_direction(model): a random direction "
                               "in weight space whose every filter has the norm of the model's filter (Li et al. "
                               "2018), zero for biases and BatchNorm; print one PASS/FAIL line per property.")


def _probe_models(device: torch.device) -> list[tuple[str, nn.Module]]:
    """A fully connected and a convolutional network of salted sizes, with random weights (salted)."""
    inner, outer = probe_size(5, 12, "direction width"), probe_size(3, 7, "direction channels")
    mlp = nn.Sequential(nn.Linear(probe_size(6, 15, "direction inputs"), inner), nn.BatchNorm1d(inner), nn.ReLU(),
                        nn.Linear(inner, 4))
    cnn = nn.Sequential(nn.Conv2d(2, outer, 3, bias=False), nn.BatchNorm2d(outer), nn.ReLU(),
                        nn.Conv2d(outer, outer + 2, 1), nn.Flatten(), nn.Linear(9 * (outer + 2), 3))  # 5x5 inputs
    models = [("a Linear-BatchNorm1d-ReLU-Linear network", mlp), ("a network of convolutions", cnn)]
    for index, (_, model) in enumerate(models):
        model.to(device).eval()
        randomize_weights(model, 40 + index)
    return models


def _run_direction(function: DirectionFunction, model: nn.Module, name: str) -> list[Tensor]:
    """The learner's direction for the model, one tensor per parameter; the model must stay as it was."""
    call = f"{name_of(function, 'filter_normalized_direction')}(model) on {name}"
    parameters = list(model.parameters())
    before = [p.detach().clone() for p in parameters]
    result = function(model)
    if isinstance(result, Tensor) or not isinstance(result, (list, tuple)):
        raise PropertyFailed(f"{call} returned a {type(result).__name__}; return a list with one tensor per "
                             "parameter, in model.parameters() order")
    if any(not torch.equal(p.detach(), b) for p, b in zip(parameters, before, strict=True)):
        raise PropertyFailed(f"{call} changed the model's weights: build the direction as new tensors "
                             "(torch.randn_like(p)) and leave the parameters as they are")
    if len(result) != len(parameters):
        raise PropertyFailed(f"{call} returned {len(result)} tensors for a model with {len(parameters)} parameters: "
                             "one per parameter, biases and BatchNorm's included")
    direction = [_tensor(d, call, "tensors only") for d in result]
    for index, (d, p) in enumerate(zip(direction, parameters, strict=True)):
        if d.shape != p.shape:
            raise PropertyFailed(f"{call}: tensor {index} has shape {tuple(d.shape)}, its parameter "
                                 f"{tuple(p.shape)}; keep model.parameters()' order and shapes")
        if d.device.type != p.device.type:
            raise PropertyFailed(f"{call}: tensor {index} is on {d.device}, its parameter on {p.device}: draw it "
                                 "with torch.randn_like(p), which puts it beside its parameter")
    return direction


@check_filter_direction.property("shapes", "a list with one tensor per parameter, its shape and device; the model "
                                 "left as it was")
def _expect_direction_shapes(function: DirectionFunction, device: torch.device) -> None:
    """One tensor per parameter, in order, of its shape and device."""
    for name, model in _probe_models(device):
        _run_direction(function, model, name)


@check_filter_direction.property("zero for biases and norms", "zero for every parameter of fewer than 2 dimensions "
                                 "(biases, BatchNorm's scale and shift)")
def _expect_zero_vectors(function: DirectionFunction, device: torch.device) -> None:
    """Li et al. leave biases and BatchNorm's parameters where they are: their direction is zero."""
    for name, model in _probe_models(device):
        for d, p in zip(_run_direction(function, model, name), model.parameters(), strict=True):
            if p.dim() < 2 and torch.count_nonzero(d):
                raise PropertyFailed(f"on {name}, the direction of a parameter of shape {tuple(p.shape)} (a bias or "
                                     "a BatchNorm's scale or shift) is not zero: the slices move weights only, so "
                                     "give every parameter with p.dim() < 2 torch.zeros_like(p)")


def _filter_norms(tensor: Tensor) -> Tensor:
    return tensor.double().flatten(1).norm(dim=1)


@check_filter_direction.property("filter norms", "each filter d[i] has the norm of the weight's filter theta[i]")
def _expect_filter_norms(function: DirectionFunction, device: torch.device) -> None:
    """Every weight of 2 or more dimensions: ||d[i]|| = ||theta[i]|| for every output unit or channel i."""
    for name, model in _probe_models(device):
        for d, p in zip(_run_direction(function, model, name), model.parameters(), strict=True):
            if p.dim() < 2:
                continue
            got, wanted = _filter_norms(d), _filter_norms(p.detach())
            if torch.allclose(got, wanted, rtol=1e-3, atol=1e-6):
                continue
            if abs(d.double().norm() - p.detach().double().norm()) < 1e-3 * p.detach().double().norm():
                hint = ("the whole tensor has the weight's norm, but each filter must have its own filter's: "
                        "normalise d[i] for each output unit or channel i (rows of a Linear weight, d.flatten(1))")
            elif torch.allclose(got, torch.ones_like(got), rtol=1e-3):
                hint = "every filter has norm 1: multiply each by the norm of the weight's filter, ||theta[i]||"
            elif torch.allclose(d.double().norm(dim=0), p.detach().double().norm(dim=0), rtol=1e-3):
                hint = ("the columns (inputs) are normalised; a filter is one output unit's weights: d[i], the "
                        "i-th row of a Linear weight, the i-th output channel of a convolution")
            else:
                hint = "scale d[i] by ||theta[i]|| / ||d[i]||, the norms taken over everything but the first dimension"
            raise PropertyFailed(f"on {name}, a weight of shape {tuple(p.shape)} gets filters of norm "
                                 f"{got.min().item():.3g} to {got.max().item():.3g}, its own filters' are "
                                 f"{wanted.min().item():.3g} to {wanted.max().item():.3g}: {hint}")


def _seeded_direction(function: DirectionFunction, model: nn.Module, name: str, index: int) -> list[Tensor]:
    """The learner's direction after seeding torch from this run's salt (a new seed per index), as the learner
    seeds before calling it: two seeds must give two directions, whatever process the function runs in."""
    with torch.random.fork_rng(devices=[]):  # the CPU's generator comes back as it was (CUDA's is seeded too)
        torch.manual_seed(salted_seed("direction seed", index))
        return _run_direction(function, model, name)


@check_filter_direction.property("random", "a new random direction at every call, not the weights themselves")
def _expect_random(function: DirectionFunction, device: torch.device) -> None:
    """Two calls give two directions, and a direction's filters point anywhere, not along the weights' filters."""
    name, model = _probe_models(device)[0]
    first, second = (_seeded_direction(function, model, name, index) for index in (1, 2))
    weights = [(d1, d2, p.detach()) for d1, d2, p in zip(first, second, model.parameters(), strict=True)
               if p.dim() >= 2]
    if all(torch.equal(d1, d2) for d1, d2, _ in weights):
        raise PropertyFailed("two calls gave the same direction: draw it from torch's random generator at every "
                             "call (torch.randn_like(p)), without a fixed seed inside the function (seed before "
                             "calling it, to repeat a direction)")
    cosines = torch.cat([torch.nn.functional.cosine_similarity(d.double().flatten(1), p.double().flatten(1)).abs()
                         for d, _, p in weights])
    if cosines.mean() > 0.6:
        raise PropertyFailed(f"the direction's filters point along the weights' own (mean |cosine| "
                             f"{cosines.mean().item():.2f}): start from Gaussian noise, torch.randn_like(p), and "
                             "only rescale it")


# ---------------------------------------------------------------- path_gradient(branches, x, path, grad_output)

check_path_gradient = Check("function", "Check a learner's path_gradient(branches, x, path, grad_output): the gradient "
                            "at x that one path carries through the blocks relu(h + F(h)), through the branches of "
                            "`path` and the shortcuts of the others; print one PASS/FAIL line per property.")


def _probe_branches(device: torch.device) -> tuple[list[nn.Module], Tensor, Tensor]:
    """Salted blocks' branches (Linear-BN-ReLU-Linear-BN, eval mode, random weights), an input and a gradient."""
    blocks, width = probe_size(3, 5, "path blocks"), probe_size(4, 9, "path width")
    batch = probe_size(2, 6, "path batch")
    branches = []
    for index in range(blocks):
        branch = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width),
                               nn.BatchNorm1d(width)).to(device).eval()
        randomize_weights(branch, 60 + index)
        branches.append(branch)
    return branches, random_tensor(device, batch, width, seed=61), random_tensor(device, batch, width, seed=62)


def _reference_path_gradient(branches: Sequence[nn.Module], x: Tensor, path: Sequence[int], grad_output: Tensor
                             ) -> Tensor:
    """Forward as usual; backward through the branch of each block in `path` and the shortcut of every other."""
    with torch.enable_grad():
        start = x.detach().clone().requires_grad_(True)
        h = start
        for index, branch in enumerate(branches):
            h = torch.relu(h.detach() + branch(h)) if index in path else torch.relu(h + branch(h).detach())
        (gradient,) = torch.autograd.grad(h, start, grad_output)
    return gradient.detach()


def _full_gradient(branches: Sequence[nn.Module], x: Tensor, grad_output: Tensor) -> Tensor:
    """Autograd's gradient of the whole stack: every path at once."""
    with torch.enable_grad():
        start = x.detach().clone().requires_grad_(True)
        h = start
        for branch in branches:
            h = torch.relu(h + branch(h))
        (gradient,) = torch.autograd.grad(h, start, grad_output)
    return gradient.detach()


def _paths(blocks: int) -> list[tuple[int, ...]]:
    """Every path: each subset of the blocks, as sorted indices."""
    return [path for size in range(blocks + 1) for path in itertools.combinations(range(blocks), size)]


def _run_path_gradient(function: PathGradient, branches: list[nn.Module], x: Tensor, path: tuple[int, ...],
                       grad_output: Tensor) -> Tensor:
    """The learner's gradient for one path, of x's shape, on its device; x and grad_output left as they were."""
    call = f"{name_of(function, 'path_gradient')}(branches, x, path={list(path)}, grad_output)"
    given_x, given_g = x.clone(), grad_output.clone()
    result = _tensor(function(branches, given_x, list(path), given_g), call, "the gradient at x, a tensor of x's shape")
    if not (torch.equal(given_x, x) and torch.equal(given_g, grad_output)):
        raise PropertyFailed(f"{call} changed x or grad_output: leave the caller's tensors as they are")
    if result.shape != x.shape:
        raise PropertyFailed(f"{call} returned shape {tuple(result.shape)}, expected x's {tuple(x.shape)}")
    if result.device.type != x.device.type:
        raise PropertyFailed(f"{call} returned its result on {result.device}, expected {x.device.type}")
    return result


def _path_hint(result: Tensor, branches: list[nn.Module], x: Tensor, path: tuple[int, ...], grad_output: Tensor
               ) -> str:
    """What the learner's gradient matches instead of the path's, in words."""
    subpaths = sum(_reference_path_gradient(branches, x, sub, grad_output)
                   for size in range(len(path) + 1) for sub in itertools.combinations(path, size))
    reversed_path = tuple(len(branches) - 1 - index for index in path)
    wrong = {
        "in the blocks of the path the gradient also took the shortcut (that sums every path inside this one): "
        "there the shortcut must carry no gradient, h.detach() + F(h)": subpaths,
        "blocks are counted from the input: path index 0 is the first block x passes": _reference_path_gradient(
            branches, x, reversed_path, grad_output),
        "it is the full gradient, every path at once: send the gradient through the branch only in the blocks of "
        "the path, and through the shortcut only in the others (detach the other summand)": _full_gradient(
            branches, x, grad_output),
    }
    for words, value in wrong.items():
        if torch.allclose(result, value, atol=TOLERANCE, rtol=1e-3):
            return words
    return ("each block computes relu(h + F(h)) forward; in a block of the path the gradient passes F only "
            "(relu(h.detach() + F(h))), in any other the shortcut only (relu(h + F(h).detach()))")


def _expect_paths(function: PathGradient, device: torch.device, paths: list[tuple[int, ...]]) -> None:
    """The learner's gradient of each of these paths equals the reference's."""
    branches, x, grad_output = _probe_branches(device)
    for path in paths:
        result = _run_path_gradient(function, branches, x, path, grad_output)
        expected = _reference_path_gradient(branches, x, path, grad_output)
        if not torch.allclose(result, expected, atol=TOLERANCE, rtol=1e-3):
            raise PropertyFailed(f"for path {list(path)} of {len(branches)} blocks the gradient differs from the "
                                 f"path's by up to {(result - expected).abs().max().item():.3g}: "
                                 f"{_path_hint(result, branches, x, path, grad_output)}")


@check_path_gradient.property("shortcuts only", "path [] (every shortcut, no branch): the ReLUs' masks times "
                              "grad_output")
def _expect_shortcuts_only(function: PathGradient, device: torch.device) -> None:
    """The empty path: the gradient goes through every shortcut and every block's ReLU, and no branch."""
    _expect_paths(function, device, [()])


@check_path_gradient.property("one path", "any path: the gradient through its branches and the other blocks' "
                              "shortcuts")
def _expect_one_path(function: PathGradient, device: torch.device) -> None:
    """Random salted paths of every length, the full one included."""
    blocks = len(_probe_branches(device)[0])
    every = _paths(blocks)
    generator = torch.Generator().manual_seed(salted_seed("paths") % 2**31)
    chosen = [every[int(i)] for i in torch.randperm(len(every), generator=generator)[:4]]
    _expect_paths(function, device, [tuple(range(blocks)), (blocks - 1,), *chosen])


@check_path_gradient.property("sum of paths", "the gradients of all 2^B paths add up to autograd's gradient")
def _expect_sum_of_paths(function: PathGradient, device: torch.device) -> None:
    """prod (I + J_l) expanded: summed over every subset of blocks, the paths give the whole gradient."""
    branches, x, grad_output = _probe_branches(device)
    total = sum(_run_path_gradient(function, branches, x, path, grad_output) for path in _paths(len(branches)))
    full = _full_gradient(branches, x, grad_output)
    if not torch.allclose(total, full, atol=1e-3, rtol=1e-3):
        raise PropertyFailed(f"the {2 ** len(branches)} paths of {len(branches)} blocks add up to a gradient up to "
                             f"{(total - full).abs().max().item():.3g} away from autograd's: each block's Jacobian is "
                             "D (I + J_F), and every path takes exactly one of its two terms, I or J_F")
