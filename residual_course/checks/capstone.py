"""Checks for lesson 09: a learner-designed residual network for Fashion-MNIST, judged by behaviour alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from residual_course.checks.report import Check, Property, PropertyFailed, run_properties
from residual_course.checks.subjects import build, expect_device_and_gradient, name_of, random_tensor, run
from residual_course.data import DataSet
from residual_course.formulas import count_parameters
from residual_course.grading_policy import PARAMETER_BUDGET, grading_ablation, grading_bands
from residual_course.training import History

ModelFactory = Callable[[], nn.Module]

NUM_CLASSES = 10
_ADD_NODES = ("AddBackward0", "AddBackward1")


def _forward(model: nn.Module, images: Tensor, call: str) -> Tensor:
    """Run the model and insist on a (batch, 10) float tensor of logits."""
    expected = (len(images), NUM_CLASSES)
    output = run(model, images, call, returns=f"one tensor of shape {expected}")
    if tuple(output.shape) != expected:
        raise PropertyFailed(f"{call} maps images {tuple(images.shape)} to {tuple(output.shape)}, expected "
                             f"{expected}: end with global average pooling (or a flatten) and nn.Linear(..., 10)")
    if not output.is_floating_point():
        raise PropertyFailed(f"{call} returned {output.dtype} values; return float logits, not class indices")
    return output


def _graph_nodes(output: Tensor) -> set:
    """Every node of the autograd graph that computed `output`."""
    nodes, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return nodes


def _additive_shortcuts(output: Tensor, parameters: set[int]) -> int:
    """How many additions in the autograd graph of `output` have the form t + f(t), f using model parameters."""
    found = 0
    for node in _graph_nodes(output):
        if type(node).__name__ not in _ADD_NODES:
            continue
        operands = [operand for operand, _ in node.next_functions if operand is not None]
        if len(operands) == 2 and operands[0] is not operands[1] and (
                _branch_reaches(operands[1], operands[0], parameters)
                or _branch_reaches(operands[0], operands[1], parameters)):
            found += 1
    return found


def _branch_reaches(branch: object, shortcut: object, parameters: set[int]) -> bool:
    """True when `branch` is computed from `shortcut`'s tensor through at least one op that uses a parameter."""
    seen, stack, reached, uses_parameters = set(), [branch], False, False
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node is shortcut:
            reached = True
            continue  # what feeds the shortcut's tensor is not part of the branch
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in parameters:
            uses_parameters = True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return reached and uses_parameters


# ---------------------------------------------------------------- MyResNet

check_capstone = Check("model", "Check a learner's capstone model class: MyResNet() maps (N, 1, 28, 28) "
                       "images to (N, 10) logits, has at most `budget` trainable parameters, runs on the "
                       "device and adds an identity shortcut somewhere; print one PASS/FAIL line per property.",
                       budget=PARAMETER_BUDGET)


def _model_call(factory: ModelFactory) -> str:
    """The learner's call, for messages: MyResNet()."""
    return f"{name_of(factory, 'model')}()"


@check_capstone.property("output", "maps (N, 1, 28, 28) images to (N, 10) in train() and eval() mode")
def _expect_output(factory: ModelFactory, device: torch.device) -> None:
    """Batches of 2 and 5 images give (batch, 10) float outputs, in train() and in eval() mode."""
    call = _model_call(factory)
    model = build(factory, device=device, call=call)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        for batch in (2, 5):
            with torch.no_grad():
                _forward(model, random_tensor(device, batch, 1, 28, 28), f"{call} in {mode}() mode")


@check_capstone.property("logits", "returns logits, not softmax probabilities")
def _expect_logits(factory: ModelFactory, device: torch.device) -> None:
    """The rows of the output are not all non-negative and summing to 1 (probabilities)."""
    call = _model_call(factory)
    model = build(factory, device=device, call=call).eval()
    with torch.no_grad():
        scores = _forward(model, random_tensor(device, 6, 1, 28, 28), call)
    if (scores >= 0).all() and torch.allclose(scores.sum(dim=1), torch.ones(6, device=device), atol=1e-4):
        raise PropertyFailed("every row is non-negative and sums to 1, so the model returns probabilities: "
                             "return the raw logits of the last nn.Linear (no softmax); cross-entropy applies "
                             "log-softmax itself, and a softmax before it squashes the gradient")


@check_capstone.property("budget", "at most {budget:,} trainable parameters")
def _expect_within_budget(factory: ModelFactory, device: torch.device, budget: int) -> None:
    """The model has at least one and at most `budget` trainable parameters."""
    call = _model_call(factory)
    got = count_parameters(build(factory, device=device, call=call))
    if got > budget:
        raise PropertyFailed(f"{call} has {got:,} trainable parameters, {got - budget:,} over the budget of "
                             f"{budget:,}: narrow the widest stage (a 3x3 conv costs 9 * C_in * C_out), or "
                             "use global average pooling instead of flatten before the classifier")
    if got == 0:
        raise PropertyFailed(f"{call} has no trainable parameters")


@check_capstone.property("device", "runs on the device and passes the gradient to its input")
def _expect_capstone_on_device(factory: ModelFactory, device: torch.device) -> None:
    """Parameters and output live on the course device, and the loss gradient reaches the input."""
    call = _model_call(factory)
    model = build(factory, device=device, call=call).train()
    expect_device_and_gradient(model, random_tensor(device, 4, 1, 28, 28), device, call, _forward)


@check_capstone.property("shortcut", "contains an identity shortcut: some tensor x is added to F(x)")
def _expect_identity_shortcut(factory: ModelFactory, device: torch.device) -> None:
    """The forward pass adds some tensor x to a branch computed from x with parameters (x + F(x))."""
    call = _model_call(factory)
    model = build(factory, device=device, call=call).eval()
    images = random_tensor(device, 2, 1, 28, 28).requires_grad_(True)
    scores = _forward(model, images, call)
    if _additive_shortcuts(scores, {id(p) for p in model.parameters()}) == 0:
        raise PropertyFailed("no addition of the form x + F(x) runs in the forward pass: a residual block adds "
                             "its input x, unchanged, to its branch output (out = relu(branch(x) + x)); a "
                             "projection shortcut alone (conv1x1(x) + branch(x)) does not count, so keep at least "
                             "one block whose shape does not change")


# ---------------------------------------------------------------- the ablation

def _additions(output: Tensor) -> int:
    """Additions of two computed tensors in the autograd graph of `output` (a parameter added to a tensor is none)."""
    return sum(1 for node in _graph_nodes(output) if type(node).__name__ in _ADD_NODES
               and sum(1 for operand, _ in node.next_functions
                       if operand is not None and type(operand).__name__ != "AccumulateGrad") == 2)


ABLATION_KEYS = ("with shortcuts", "without shortcuts")
ABLATION_TOLERANCE = 0.02  # accuracy: the grader's own run of the recipe may differ in the last few images


def _reported_accuracies(reported: object) -> tuple[float, float]:
    """The two accuracies of `ablation` (with, without shortcuts), or a FAIL that says how to store them."""
    if not isinstance(reported, dict) or set(reported) != set(ABLATION_KEYS):
        raise PropertyFailed(f"`ablation` should be a dict with the keys {list(ABLATION_KEYS)}, one validation "
                             f"accuracy each; it is {reported!r:.80}")
    for key in ABLATION_KEYS:
        value = reported[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise PropertyFailed(f"ablation[{key!r}] is {value!r:.40}: store the accuracy as a number between 0 "
                                 "and 1 (history.test_accuracy[-1])")
    return float(reported[ABLATION_KEYS[0]]), float(reported[ABLATION_KEYS[1]])


check_ablation = Check("model", "Check the capstone's ablation: MyResNet(shortcuts=False) is MyResNet() with "
                       "only its shortcuts (and their projections) removed; `reported` holds the validation "
                       "accuracies GRADING_RECIPE gives both on `data` (graded for being run, not for which is "
                       "higher); and in the grader's own runs of that ablation the shortcuts are needed: without "
                       "them the validation accuracy drops by at least grading_bands().shortcut_gap (the mean over "
                       "grading_bands().ablation_seeds). Print one "
                       "PASS/FAIL line per property.",
                       title="the ablation of {name}", derived={"gap": lambda: grading_bands().shortcut_gap},
                       reported=None, data=None)


@check_ablation.property("removed", "{name}(shortcuts=False) is {name}() with its shortcuts removed, and nothing else")
def _expect_shortcuts_removed(factory: Callable[..., nn.Module], device: torch.device) -> None:
    """The ablated model adds no two computed tensors, keeps the full model's parameters but the projections', and
    its output depends on its input at initialisation (a zero-initialised branch without its shortcut is dead)."""
    name = name_of(factory, "model")
    call = f"{name}(shortcuts=False)"
    full = build(factory, device=device, call=f"{name}()")
    ablated = build(factory, shortcuts=False, device=device, call=call).eval()
    images = random_tensor(device, 2, 1, 28, 28).requires_grad_(True)
    added = _additions(_forward(ablated, images, call))
    if added:
        raise PropertyFailed(f"{call} still adds two computed tensors {added} time(s) (x + F(x), or conv1x1(x) + "
                             "F(x)): without shortcuts each block returns relu(F(x)), with no projection either")
    kept, shapes = [tuple(p.shape) for p in ablated.parameters()], [tuple(p.shape) for p in full.parameters()]
    for shape in kept:
        if shape not in shapes:
            raise PropertyFailed(f"{call} has a parameter of shape {shape} that {name}() has not: the ablation "
                                 "is the same network with only the shortcuts (and their projections) removed")
        shapes.remove(shape)
    if count_parameters(ablated) < 0.8 * count_parameters(full):
        raise PropertyFailed(f"{call} keeps {count_parameters(ablated):,} of {name}()'s "
                             f"{count_parameters(full):,} parameters: remove only the shortcuts and their "
                             "projections; the stem, the branches and the head stay")
    with torch.no_grad():  # in train mode: BatchNorm normalises each layer, so only a zeroed gamma can silence it
        logits = ablated.train()(random_tensor(device, 6, 1, 28, 28))
    if logits.std(dim=0).max() <= 1e-6 * (1 + logits.abs().max()):
        raise PropertyFailed(f"{call} starts dead: its logits are the same for every image, so the ablation would "
                             "measure that start, not the shortcuts. A branch whose last BatchNorm's gamma starts at "
                             "zero passes nothing without its shortcut: zero-initialise only when shortcuts=True")


def _graders_ablation(factory: Callable[..., nn.Module], data: DataSet | None, seed: int = 0) -> tuple[float, float]:
    """The grader's own run of the ablation on the development data: (with shortcuts, without) validation accuracy."""
    if data is None:
        raise PropertyFailed("the check needs the development data set: pass `development`")
    return grading_ablation(factory, data, seed)


@check_ablation.property("measured", "`ablation` holds what GRADING_RECIPE gives both models on the validation split")
def _expect_measured_accuracies(factory: Callable[..., nn.Module], device: torch.device, reported: object,
                                data: DataSet | None) -> None:
    """Both reported accuracies are within ABLATION_TOLERANCE of the grader's own run of the ablation on `data`."""
    name = name_of(factory, "model")
    accuracies = _reported_accuracies(reported)
    expected = _graders_ablation(factory, data)
    for key, shortcuts, value, measured in zip(ABLATION_KEYS, (True, False), accuracies, expected, strict=True):
        if abs(value - measured) > ABLATION_TOLERANCE:
            raise PropertyFailed(f"ablation[{key!r}] is {value:.3f}, but a fresh {name}(shortcuts={shortcuts}) "
                                 f"seeded with rc.seed_everything(0) and trained by fit(model, development, "
                                 f"**GRADING_RECIPE) reaches {measured:.3f}: report the final validation "
                                 "accuracy of exactly that run (re-run the cells after changing the model)")


@check_ablation.property("needed", "{name} needs its shortcuts: without them it loses at least {gap:.2f} of "
                         "validation accuracy")
def _expect_shortcuts_needed(factory: Callable[..., nn.Module], device: torch.device, data: DataSet | None,
                             gap: float) -> None:
    """A true ablation of a residual design, and the grader's own runs of it lose at least `gap` without shortcuts."""
    _expect_identity_shortcut(factory, device)
    _expect_shortcuts_removed(factory, device)
    seeds = grading_bands().ablation_seeds
    runs = [_graders_ablation(factory, data, seed) for seed in seeds]
    with_shortcuts, without = (sum(run[index] for run in runs) / len(runs) for index in (0, 1))
    if with_shortcuts - without < gap:
        over = f" (the mean over seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
        raise PropertyFailed(f"with its shortcuts it reaches {with_shortcuts:.3f}, without them {without:.3f}{over}: "
                             f"a difference of {with_shortcuts - without:+.3f}, under {gap:.2f}. A network shallow "
                             "enough to train as well without shortcuts does not need them: go deeper at the "
                             "same budget (narrower stages, more blocks each; in lessons 03 and 07 plain networks "
                             "of 20 and more layers trained worse than shallow ones), and keep its accuracy")


ABLATION_OUTCOMES = ("shortcuts help", "about the same", "shortcuts hurt")


def check_ablation_prediction(prediction: object, reported: object) -> None:
    """The learner's prediction of their ablation, against the two accuracies they measured (the ablation's own
    check grades those numbers against the recipe; this one, what the learner expected of them)."""
    def test(device: torch.device) -> None:
        if prediction not in ABLATION_OUTCOMES:
            raise PropertyFailed(f"predicted_ablation is {prediction!r:.40}: set it to one of "
                                 f"{', '.join(map(repr, ABLATION_OUTCOMES))}")
        with_shortcuts, without = _reported_accuracies(reported)
        # "about the same": within the shortcut band, where seed-to-seed noise can flip a smaller difference
        gap, margin = with_shortcuts - without, grading_bands().shortcut_gap
        outcome = ABLATION_OUTCOMES[0 if gap > margin else 2 if gap < -margin else 1]
        detail = (f"your ablation measured {with_shortcuts:.3f} with the shortcuts and {without:.3f} without (a "
                  f"difference within ±{margin:.2f} is 'about the same')")
        why = ("shortcuts matter more the deeper the network: a plain network of a few BatchNorm-ed convolutions "
               "trains about as well without them, while the solution's 19 lose 14 to 31 points in the short run "
               "and 1.6 to 3.0 in the long one")
        if prediction != outcome:
            raise PropertyFailed(f"you predicted {prediction!r}; {detail}, i.e. {outcome!r}: {why}")
        print(f"        you predicted {prediction!r}: {detail}")

    run_properties("your prediction of the ablation", [Property("predicted", "the prediction is what your "
                                                                "ablation measured", test)])


def check_validation_accuracy(history: History, target: float) -> None:
    """The learner's design, trained with the recipe, clears `target` on the validation split: PASS, or what to try."""

    def clears(device: torch.device) -> None:
        reached = history.test_accuracy[-1] if history.test_accuracy else 0.0
        if reached < target:
            raise PropertyFailed(f"it reaches {reached:.3f}: compare a change at a time on this split (more blocks "
                                 "at low resolution, the budget moved between stages, global average pooling before "
                                 "the classifier, zero-initialised last BatchNorm scales)")

    run_properties("your design", [Property("validation", f"reaches {target:.2f} validation accuracy under "
                                            "GRADING_RECIPE", clears)])

