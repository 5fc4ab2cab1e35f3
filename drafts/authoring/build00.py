import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "00_pytorch_refresher"
nb = NB(SLUG)

nb.md(f"""
# Lesson 00 · PyTorch refresher: a fully connected classifier

{badge(SLUG)}

Before we dig into why deep networks are hard to train, we need the everyday tools: a model written as an
`nn.Module`, a training step, a loss and an optimiser. This lesson builds them for a small fully connected network
(a multilayer perceptron, MLP) on Fashion-MNIST, the data set the whole course uses, and settles one question that
trips up many people who come to PyTorch from Keras: what goes into `nn.CrossEntropyLoss`.

**By the end of this lesson you can**

1. write an MLP as an `nn.Module` that returns **logits**, and count its parameters with a formula;
2. write one training step (zero the gradients, forward, loss, backward, step) and say why each part is there;
3. compute the cross-entropy from logits in a numerically stable way, and explain with numbers why
   `CrossEntropyLoss` must not receive softmax probabilities;
4. compare SGD with momentum and Adam on learning curves, and train the MLP to a stated test accuracy.

Exercises are marked **Exercise**; each has check cells that print PASS, or FAIL with a hint.
""")
nb.code(setup_cell())
nb.code('''
import math
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import residual_course as rc
from residual_course import plots
from residual_course.checks.refresher import check_cross_entropy, check_mlp, check_train_step, mlp_params
from residual_course.data import load_dataset
from residual_course.training import History, evaluate, fit

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')
nb.md("""
## 1. The data

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) has 70,000 greyscale images of 28x28 pixels, in ten classes of clothes
and shoes: 60,000 for training and 10,000 for testing. `load_dataset` loads it once as two tensors per split, already
on the device and normalised to mean 0 and standard deviation 1 (in fast mode, a fixed class-balanced subset).
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
print(f"train: images {tuple(data.train.images.shape)}, labels {tuple(data.train.labels.shape)}")
print(f"test:  images {tuple(data.test.images.shape)}, labels {tuple(data.test.labels.shape)}")
print(f"pixel mean {data.train.images.mean():.3f}, std {data.train.images.std():.3f}")
''')
nb.code('''
fig, axes = plt.subplots(1, 10, figsize=(12, 1.8))
for label, ax in enumerate(axes):
    first = int((data.train.labels == label).nonzero()[0])
    ax.imshow(data.train.images[first, 0].cpu(), cmap="gray")
    ax.set_title(data.class_names[label], fontsize=8)
    ax.axis("off")
plt.show()
''')
nb.md(r"""
## 2. A fully connected network

An `nn.Module` has two parts: `__init__` creates the layers, and stores them as attributes (or inside
`nn.Sequential` / `nn.ModuleList`) so that `.parameters()` finds them and `.to(device)` moves them; `forward` says how
a batch flows through them.

A fully connected network sees an image as a flat vector of $28 \times 28 = 784$ numbers. Each hidden layer is a
`Linear` layer followed by a ReLU; the last layer is a `Linear` layer with one output per class. Its ten outputs are
raw scores, called **logits**: any real numbers, the larger the more likely the class. We do **not** put a softmax at
the end: the loss will take care of it (section 4 shows why that matters).

`nn.Linear(a, b)` holds an $a \times b$ weight matrix and $b$ biases, so an MLP with layer sizes
$n_0, n_1, \dots, n_L$ has

$$\sum_{\ell=1}^{L} (n_{\ell-1} + 1)\, n_\ell \ \text{parameters.}$$

### Exercise 1: `MLP(in_features=784, hidden_features=(256, 128), num_classes=10)`

Flatten the input (so that both `(N, 1, 28, 28)` images and `(N, 784)` vectors work), then one `Linear` + `ReLU`
per entry of `hidden_features`, then a final `Linear` to `num_classes` logits. `hidden_features=()` is a valid
choice: then the model is a single `Linear` layer (multinomial logistic regression).
""")
nb.solution("mlp", '''
class MLP(nn.Module):
    """Fully connected classifier: flatten, Linear + ReLU per hidden size, then a Linear layer to the logits."""

    def __init__(self, in_features: int = 784, hidden_features: tuple[int, ...] = (256, 128), num_classes: int = 10):
        super().__init__()
        ### BEGIN SOLUTION
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden_features:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION
''')
nb.md("""
The checks build your class with several sizes, on the GPU when there is one. The first checks shapes, the gradient
path and the device; the second the parameter count and the ReLUs; the third that the output is logits.
""")
nb.test("mlp-shape", 2, '''
check_mlp(MLP, only=["shape", "gradient", "device"])
### BEGIN HIDDEN TESTS
_model = MLP(hidden_features=(32,)).to(device)
assert _model(torch.randn(1, 1, 28, 28, device=device)).shape == (1, 10), "a batch of one image must work"
assert _model(torch.randn(7, 784, device=device)).shape == (7, 10)
_model = MLP(in_features=30, hidden_features=(), num_classes=4).to(device)
assert _model(torch.randn(3, 30, device=device)).shape == (3, 4), "hidden_features=() is a single Linear layer"
### END HIDDEN TESTS
''')
nb.test("mlp-layers", 2, '''
check_mlp(MLP, only=["parameters", "relu"])
### BEGIN HIDDEN TESTS
for _sizes in [(), (512,), (64, 64, 64, 64)]:
    _count = sum(p.numel() for p in MLP(hidden_features=_sizes).parameters())
    assert _count == mlp_params(784, _sizes, 10), f"MLP(hidden_features={_sizes}) has {_count} parameters"
### END HIDDEN TESTS
''')
nb.test("mlp-logits", 2, '''
check_mlp(MLP, only="logits")
### BEGIN HIDDEN TESTS
_logits = MLP(in_features=12, hidden_features=(8,), num_classes=3).to(device)(torch.randn(256, 12, device=device))
assert (_logits < 0).any(), "logits must be free to be negative"
assert not torch.allclose(_logits.sum(dim=1), torch.ones(256, device=device)), "rows must not be probabilities"
### END HIDDEN TESTS
''')
nb.md("""
Your model, its layers and its size. The count matches the formula: most of the parameters sit in the first layer,
which connects every pixel to every unit.
""")
nb.code('''
model = MLP().to(device)
print(model)
count = sum(p.numel() for p in model.parameters())
first_layer = 784 * 256 + 256
print(f"{count:,} parameters; the formula gives {mlp_params():,}; the first layer holds {first_layer / count:.0%}")
assert count == mlp_params() == 235_146
''', tags=["uses-exercise"])
nb.md("""
Before training, the logits are small random numbers. `softmax` turns a row of logits into probabilities (positive,
summing to 1); for an untrained model they are all close to 1/10.
""")
nb.code('''
with torch.no_grad():
    logits = model(data.train.images[:4])
    probabilities = logits.softmax(dim=1)
print("logits of the first image:       ", [round(v, 2) for v in logits[0].tolist()])
print("its softmax probabilities:       ", [round(v, 3) for v in probabilities[0].tolist()])
print(f"largest probability over 4 images: {probabilities.max():.3f}")
''', tags=["uses-exercise"])
nb.md("""
## 3. One training step

Training repeats one step per mini-batch:

1. **`optimizer.zero_grad()`**: PyTorch *adds* every new gradient into each parameter's `.grad` (handy to accumulate
   gradients over several small batches). Without this line, each step would also apply all the old gradients.
2. **forward**: `logits = model(images)`.
3. **loss**: `F.cross_entropy(logits, labels)`, the mean over the batch (section 4 looks inside it).
4. **`loss.backward()`**: autograd fills `p.grad` with $\\partial\\,\\text{loss} / \\partial p$ for every parameter.
5. **`optimizer.step()`**: the update rule, e.g. plain SGD does `p -= lr * p.grad`.

Return the loss as a Python number with `loss.item()`: a loss *tensor* kept in a list would keep its whole
computation graph alive, and memory would grow with every step.

### Exercise 2: `train_step(model, optimizer, images, labels) -> float`

Make exactly one optimisation step on the batch with `F.cross_entropy` on the model's logits, and return the loss of
that batch (computed before the step) as a float.
""")
nb.solution("train-step", '''
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimisation step on one batch; returns the batch's cross-entropy before the step."""
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION
''')
nb.md("""
The checks compare your step with a reference step: the same loss, the same parameter update, and a second call that
does not re-apply the first call's gradient.
""")
nb.test("train-step-loss", 2, '''
check_train_step(train_step, only=["float", "loss value"])
### BEGIN HIDDEN TESTS
_model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).to(device)
_images, _labels = data.train.images[:64], data.train.labels[:64]
with torch.no_grad():
    _expected = F.cross_entropy(_model(_images), _labels).item()
_got = train_step(_model, torch.optim.SGD(_model.parameters(), lr=0.1), _images, _labels)
assert isinstance(_got, float) and abs(_got - _expected) < 1e-4 * max(1.0, _expected), (_got, _expected)
### END HIDDEN TESTS
''')
nb.test("train-step-update", 2, '''
check_train_step(train_step, only=["one step", "learns"])
### BEGIN HIDDEN TESTS
# One step from a fresh model with another optimiser (momentum, weight decay) on real images.
rc.seed_everything(1)
_model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
_reference = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
_reference.load_state_dict(_model.state_dict())
_images, _labels = data.train.images[:128], data.train.labels[:128]
train_step(_model, torch.optim.SGD(_model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3), _images, _labels)
_reference_optimizer = torch.optim.SGD(_reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
F.cross_entropy(_reference(_images), _labels).backward()
_reference_optimizer.step()
for _p, _q in zip(_model.parameters(), _reference.parameters(), strict=True):
    assert torch.allclose(_p, _q, atol=1e-5), "one call must make exactly one optimiser step"
### END HIDDEN TESTS
''')
nb.test("train-step-zero-grad", 1, '''
check_train_step(train_step, only="zero grad")
### BEGIN HIDDEN TESTS
rc.seed_everything(2)
_model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).to(device)
_reference = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).to(device)
_reference.load_state_dict(_model.state_dict())
_x, _y = torch.randn(20, 6, device=device), torch.randint(0, 3, (20,), device=device)
_optimizer, _reference_optimizer = (torch.optim.SGD(m.parameters(), lr=0.2) for m in (_model, _reference))
for _ in range(3):
    train_step(_model, _optimizer, _x, _y)
    _reference_optimizer.zero_grad()
    F.cross_entropy(_reference(_x), _y).backward()
    _reference_optimizer.step()
for _p, _q in zip(_model.parameters(), _reference.parameters(), strict=True):
    assert torch.allclose(_p, _q, atol=1e-5), "three steps must give what three separate SGD steps give"
### END HIDDEN TESTS
''')
nb.md("""
Your step is all a training loop needs. Here it trains a fresh MLP with Adam on 300 mini-batches of 128 images (30
in fast mode), in random order; we record every batch's loss.
""")
nb.code('''
rc.seed_everything(0)
model = MLP().to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
steps = 30 if rc.fast_mode() else 300
order = torch.randperm(len(data.train), device=device)
batch_losses = [train_step(model, optimizer, data.train.images[batch], data.train.labels[batch])
                for batch in order.split(128)[:steps]]
test_loss, test_accuracy = evaluate(model, data.test)
print(f"{len(batch_losses)} steps: batch loss {batch_losses[0]:.3f} -> {batch_losses[-1]:.3f}; "
      f"test accuracy {test_accuracy:.1%}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(batch_losses)
ax.set_xlabel("step (mini-batch)")
ax.set_ylabel("training loss")
ax.set_title("the MLP trained with your train_step")
plt.show()
''', tags=["uses-exercise"])
nb.code('''
first, last = sum(batch_losses[:10]) / 10, sum(batch_losses[-10:]) / 10
assert last < 0.6 * first, (first, last)
assert test_accuracy > 0.6, test_accuracy
''', tags=["uses-exercise"])
nb.md("""
The course's `fit(model, data, ...)` runs this same step (plus bookkeeping: epochs, shuffling, per-epoch loss and
accuracy on both splits, seeding), so later lessons can compare architectures with one line each.

## 4. Which loss? Cross-entropy takes logits

For one example with logits $z$ and true class $y$, the cross-entropy is minus the log of the probability that
softmax gives the true class:

$$\\ell(z, y) = -\\log \\frac{e^{z_y}}{\\sum_j e^{z_j}} = \\log \\sum_j e^{z_j} \\; - \\; z_y .$$

The right-hand form, "log-sum-exp minus the true logit", is what `F.cross_entropy` and `nn.CrossEntropyLoss` compute,
and it is why they take **logits**: `torch.logsumexp` subtracts the largest logit before exponentiating, so nothing
overflows, and no probability is ever rounded to 0 before its logarithm is taken. The left-hand form, computed as
written (softmax, then log), fails as soon as one logit exceeds another by about a hundred: the smaller probability
underflows to 0 in float32 and its log is $-\\infty$ (a cell after the exercise finds the exact gap).

### Exercise 3: `cross_entropy_from_logits(logits, labels)`

Return the mean over the batch of $\\log\\sum_j e^{z_j} - z_y$, as a 0-d tensor, for `logits` of shape `(N, C)` and
integer `labels` of shape `(N,)`. Use `torch.logsumexp` and pick each row's true logit (for example with `gather` or
by indexing with `torch.arange(N)`); do not call `F.cross_entropy` or `log_softmax`.
""")
nb.solution("cross-entropy", '''
def cross_entropy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch, from raw logits, via log-sum-exp (stable for any logit size)."""
    ### BEGIN SOLUTION
    true_logits = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - true_logits).mean()
    ### END SOLUTION
''')
nb.test("cross-entropy-value", 2, '''
check_cross_entropy(cross_entropy_from_logits, only=["value", "gradient"])
### BEGIN HIDDEN TESTS
for _n, _c in [(1, 2), (50, 100)]:
    _z, _y = torch.randn(_n, _c, device=device), torch.randint(0, _c, (_n,), device=device)
    assert torch.allclose(cross_entropy_from_logits(_z, _y), F.cross_entropy(_z, _y), atol=1e-5), (_n, _c)
### END HIDDEN TESTS
''')
nb.test("cross-entropy-stable", 1, '''
check_cross_entropy(cross_entropy_from_logits, only="stable")
### BEGIN HIDDEN TESTS
_z = 200 * torch.randn(16, 10, device=device)
_y = torch.randint(0, 10, (16,), device=device)
assert torch.allclose(cross_entropy_from_logits(_z, _y), F.cross_entropy(_z, _y), rtol=1e-5)
### END HIDDEN TESTS
''')
nb.md("""
Where does "softmax, then log" break? Two logits, 0 and $-d$: the smaller probability is about $e^{-d}$, and float32
rounds it to exactly 0 from some gap $d$ on. Then, on logits that differ by 200, compare the naive formula with yours
and with PyTorch's.
""")
nb.code('''
gaps = torch.arange(1, 201, device=device, dtype=torch.float32)
small_probability = torch.softmax(torch.stack([torch.zeros_like(gaps), -gaps], dim=1), dim=1)[:, 1]
first_zero = int(gaps[small_probability == 0][0])
print(f"in float32, softmax gives exactly 0 from a gap of {first_zero} on")
assert 80 < first_zero < 110
''')
nb.code('''
z = torch.tensor([[200.0, 0.0, -5.0]], device=device)
y = torch.tensor([1], device=device)
naive = -torch.log(torch.softmax(z, dim=1)[0, y]).item()
print(f"softmax then log: {naive};  yours: {cross_entropy_from_logits(z, y).item():.4f};  "
      f"F.cross_entropy: {F.cross_entropy(z, y).item():.4f}")
assert math.isinf(naive) and abs(cross_entropy_from_logits(z, y).item() - 200.0) < 1e-3
''', tags=["uses-exercise"])
nb.md(r"""
### The softmax-twice mistake

The article this course grew from trains its Keras model with a `softmax` output layer and
`loss="categorical_crossentropy"`. That is right *in Keras*, whose cross-entropy expects probabilities by default
(`from_logits=False`). Carried over to PyTorch, a model that ends in `nn.Softmax` trained with
`nn.CrossEntropyLoss` applies softmax **twice**: the loss treats the probabilities $p \in [0, 1]$ as if they were
logits. Two things go wrong, and both can be measured.

**The loss cannot go down.** With every $p_j \in [0, 1]$ and $\sum_j p_j = 1$, the best case is a perfect
prediction, $p = $ one-hot of the true class, which costs $\log(e + C - 1) - 1$ instead of 0; the worst case, all
the probability on a wrong class, costs only $\log(e + C - 1)$.
""")
nb.code('''
num_classes = 10
perfect = F.one_hot(torch.tensor([0], device=device), num_classes).float()   # all probability on the true class 0
hopeless = F.one_hot(torch.tensor([1], device=device), num_classes).float()  # all probability on class 1
floor = F.cross_entropy(perfect, torch.tensor([0], device=device)).item()
ceiling = F.cross_entropy(hopeless, torch.tensor([0], device=device)).item()
print(f"CrossEntropyLoss on probabilities: from {floor:.4f} (perfect) to {ceiling:.4f} (certain and wrong)")
print(f"on logits it ranges from 0 to infinity; log(e + 9) - 1 = {math.log(math.e + 9) - 1:.4f}")
''')
nb.code('''
assert abs(floor - (math.log(math.e + num_classes - 1) - 1)) < 1e-5
assert abs(ceiling - floor - 1.0) < 1e-5
''')
nb.md(r"""
**The gradient vanishes exactly when it is needed.** Take a confidently wrong prediction: logit 8 for a wrong class,
0 for the others. On logits, the gradient with respect to the logits is $\mathrm{softmax}(z) - \mathrm{onehot}(y)$, a
strong push. Through an extra softmax, that signal is multiplied by the softmax's Jacobian, which is almost zero once
the softmax is saturated:
""")
nb.code('''
def logit_gradient_norm(loss_of_logits) -> float:
    """Norm of d loss / d logits for a confidently wrong prediction (true class 0, logit 8 on class 1)."""
    z = torch.zeros(1, 10, device=device)
    z[0, 1] = 8.0
    z.requires_grad_(True)
    loss_of_logits(z, torch.tensor([0], device=device)).backward()
    return z.grad.norm().item()


on_logits = logit_gradient_norm(F.cross_entropy)
on_probabilities = logit_gradient_norm(lambda z, y: F.cross_entropy(z.softmax(dim=1), y))
print(f"gradient norm w.r.t. the logits: CE(logits) {on_logits:.3f}, CE(softmax(logits)) {on_probabilities:.2e}, "
      f"ratio {on_logits / on_probabilities:,.0f}")
''')
nb.code('''
assert on_logits > 1.0 and on_probabilities < 1e-2
assert on_logits / on_probabilities > 1000
''')
nb.md("""
And in training? Below, the same MLP is trained twice with Adam for the same number of epochs: once as it should be,
once with `nn.Softmax` appended (so `fit`'s cross-entropy receives probabilities). The dotted line is the floor that
the softmax-twice loss can never cross.
""")
nb.code('''
EPOCHS = 10


def train(build: Callable[[], nn.Module], optimizer: str, lr: float) -> History:
    """Seed, build a fresh model, train it: every run starts from the same random numbers."""
    rc.seed_everything(0)
    return fit(build(), data, epochs=EPOCHS, optimizer=optimizer, lr=lr, progress=False)


loss_runs = {
    "Adam, logits": train(MLP, "adam", 1e-3),
    "Adam, softmax twice": train(lambda: nn.Sequential(MLP(), nn.Softmax(dim=1)), "adam", 1e-3),
}
for name, history in loss_runs.items():
    print(f"{name:<20} final training loss {history.train_loss[-1]:.3f}, test accuracy {history.test_accuracy[-1]:.1%}"
          f" ({history.seconds:.0f} s)")
figure = plots.plot_history(loss_runs, metrics=("train_loss", "test_accuracy"))
figure.axes[0].axhline(floor, color="grey", linestyle=":", label="floor of CE on probabilities")
figure.axes[0].legend()
figure.suptitle("the same MLP and optimiser: cross-entropy on logits vs on softmax probabilities")
figure.tight_layout()
plt.show()
''', tags=["uses-exercise"])
nb.code('''
logits_run, softmax_run = loss_runs["Adam, logits"], loss_runs["Adam, softmax twice"]
assert min(softmax_run.train_loss) > floor
assert logits_run.train_loss[-1] < floor
assert logits_run.train_loss[-1] < softmax_run.train_loss[-1] - 0.5
assert softmax_run.test_accuracy[-1] < logits_run.test_accuracy[-1]
''', tags=["uses-exercise"])
nb.md("""
The run with the extra softmax still learns, because the right class's probability still gets a push, and it ends
with a lower test accuracy than the run on logits. Its loss, though, is stuck above the floor, and its values no
longer mean what a cross-entropy should: a perfect model would report about 1.46, and a confidently wrong example
barely contributes to the gradient. The rule: **the model returns logits; `nn.CrossEntropyLoss` applies
`log_softmax` itself**. Apply `softmax` only where you need probabilities, outside the loss (for display, or
calibrated predictions).

## 5. Choosing the optimiser: SGD with momentum or Adam

Both follow the gradient; they differ in the step size.

- **SGD with momentum** (here momentum 0.9) keeps a running sum of past gradients and moves along it with one global
  learning rate for all parameters (Sutskever et al., 2013). It is what He et al. used to train ResNets, and often
  generalises well, but its learning rate needs tuning.
- **Adam** (Kingma & Ba, 2015) divides each parameter's step by a running estimate of that parameter's gradient size,
  so every weight moves at a similar pace; its default `lr=1e-3` works out of the box for many models.

`fit` trains the MLP for the same number of epochs with each (the Adam run is the one from section 4):
""")
nb.code('''
optimiser_runs = {"SGD + momentum, lr 0.05": train(MLP, "sgd", 0.05), "Adam, lr 0.001": loss_runs["Adam, logits"]}
for name, history in optimiser_runs.items():
    print(f"{name:<24} training loss after epoch 1: {history.train_loss[0]:.3f}, at the end: "
          f"{history.train_loss[-1]:.3f}; test accuracy {history.test_accuracy[-1]:.1%}")
figure = plots.plot_history(optimiser_runs, metrics=("train_loss", "test_accuracy"))
figure.suptitle("the MLP on Fashion-MNIST: SGD with momentum vs Adam")
figure.tight_layout()
plt.show()
''', tags=["uses-exercise"])
nb.md("""
Adam's training loss falls faster at first (it is lower after the first epoch); by the end of training the two
optimisers are close. SGD's result depends on its learning rate much more than Adam's on its own: run the cell again
with `lr=0.005` for SGD and compare. Whichever you use, the learning curves tell you whether it is working.
""")
nb.code('''
sgd_run, adam_run = optimiser_runs["SGD + momentum, lr 0.05"], optimiser_runs["Adam, lr 0.001"]
assert adam_run.train_loss[0] < sgd_run.train_loss[0]
if not rc.fast_mode():
    assert abs(adam_run.test_accuracy[-1] - sgd_run.test_accuracy[-1]) < 0.02
''', tags=["uses-exercise"])
nb.md("""
The claim of this lesson, measured: after the full training run (default mode), the MLP classifies at least 85% of
the 10,000 test images correctly. (In fast mode, with a few dozen steps on a subset, the bar is lower.)
""")
nb.code('''
best_accuracy = max(history.test_accuracy[-1] for history in optimiser_runs.values())
print(f"best test accuracy of the MLP: {best_accuracy:.1%}")
if rc.fast_mode():
    assert best_accuracy > 0.7, best_accuracy   # a few dozen steps on a subset
else:
    assert best_accuracy >= 0.85, best_accuracy
''', tags=["uses-exercise"])
nb.md("""
## Summary

- A model is an `nn.Module`: layers created in `__init__` (registered, so `.parameters()` and `.to()` see them), data
  flow in `forward`. Our MLP has 235,146 parameters: $\\sum (n_{\\ell-1} + 1) n_\\ell$.
- A training step is zero_grad, forward, loss, backward, step; return `loss.item()`.
- The model returns **logits**. `CrossEntropyLoss` computes log-sum-exp minus the true logit, stably; feeding it
  probabilities applies softmax twice: the loss then cannot fall below $\\log(e + 9) - 1 \\approx 1.46$ for ten
  classes, and a confidently wrong prediction gets a gradient over a thousand times weaker.
- SGD with momentum and Adam both train the MLP; in default mode on the full data set it reaches at least 85% test
  accuracy on Fashion-MNIST.

## Going further

- Xiao, Rasul & Vollgraf (2017), *Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms*.
- Kingma & Ba (2015), *Adam: A Method for Stochastic Optimization*; Sutskever, Martens, Dahl & Hinton (2013), *On the
  importance of initialization and momentum in deep learning*; Loshchilov & Hutter (2019), *Decoupled Weight Decay
  Regularization* (AdamW).
- Try `nn.CrossEntropyLoss(label_smoothing=0.1)`, or `nn.NLLLoss` on `F.log_softmax(logits, dim=1)`: the same loss,
  split in two.
- Change `hidden_features` to `(1024,)` or `(64, 64, 64, 64)` and compare parameter counts and accuracy.
- Next: lesson 01 asks what happens to the gradient when the network gets deep.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
