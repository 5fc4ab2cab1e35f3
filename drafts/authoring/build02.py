import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "02_degradation"
nb = NB(SLUG)

nb.md(f"""
# Lesson 02 · The degradation problem

{badge(SLUG)}

Lesson 01 ended on good news: with Kaiming initialisation and batch normalisation, the gradient reaches the first
layer of a deep plain network. So can we now stack as many layers as we like? He, Zhang, Ren & Sun asked exactly that
in *Deep Residual Learning for Image Recognition* (2015). Their Figure 1 shows a 56-layer plain network on CIFAR-10
with a **higher training error** than a 20-layer one, and a higher test error too. They called this the
**degradation problem**, and it, not vanishing gradients, is what residual networks were invented to solve.

This lesson reproduces their Figure 1 in small: two plain fully connected networks on Fashion-MNIST, one shallow and
one deep.

**By the end of this lesson you can**

1. build a plain deep network with Kaiming initialisation and BatchNorm;
2. check that its gradients do not vanish, at either depth;
3. show that the deeper network nonetheless reaches a higher **training** loss;
4. tell degradation from overfitting by looking at the right curve.
""")
nb.code(setup_cell())
nb.code('''
import matplotlib.pyplot as plt
from torch import nn

import residual_course as rc
from residual_course import gradients, models, plots
from residual_course.checks.degradation import check_diagnose, check_plain_mlp, kaiming_std
from residual_course.data import load_dataset
from residual_course.training import History, evaluate, fit

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')
nb.md("""
## 1. What the original article gets wrong

The article this course grew from (its section 2.1) explains the trouble with deep plain networks by vanishing and
exploding gradients, and credits residual blocks with solving them. That is the common story, but not the one He et
al. tell. Their introduction says, in substance:

- vanishing and exploding gradients were a real obstacle, but they have been **largely addressed by normalised
  initialisation and intermediate normalisation layers** (BatchNorm): networks with tens of layers do start to
  converge under SGD (lesson 01 measured this);
- once such networks converge, a different problem appears: as depth grows, accuracy saturates and then
  **degrades**;
- and this degradation is **not overfitting**: the deeper network has a higher error on its own *training* data.

Why is a higher training error surprising? Because the deeper network could, in principle, do at least as well: copy
the shallow network into its first layers and let the extra layers compute (nearly) the identity. Its training error
would then be no higher. That SGD does not find such a solution says the deep plain network is **harder to
optimise**, not that it has too much capacity. Overfitting looks the opposite way:

| the deeper network's... | training loss | test loss |
| --- | --- | --- |
| overfitting | lower (or equal) | higher |
| degradation | **higher** | higher |

So the diagnosis needs the training curve, not only the test curve.
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
print(f"{len(data.train):,} training and {len(data.test):,} test images")
''')
nb.md(r"""
## 2. A plain deep network, done right

"Plain" means each layer feeds only the next one: no shortcut. We give it every advantage lesson 01 found:

- **Kaiming initialisation** (He et al., 2015, *Delving Deep into Rectifiers*): weights drawn with standard deviation
  $\sqrt{2 / \text{fan\_in}}$, so the signal keeps its scale from one ReLU layer to the next; biases start at
  zero.
- **Batch normalisation** (Ioffe & Szegedy, 2015) after each hidden `Linear` layer, before the ReLU: every unit's
  pre-activation is re-centred and re-scaled over the mini-batch.

### Exercise 1: `plain_mlp(depth, width)`

Return an `nn.Module` that flattens the images, then has `depth - 1` hidden units `Linear -> BatchNorm1d -> ReLU`
(the first `784 -> width`, the others `width -> width`), then a final `Linear(width, 10)` to the logits: `depth`
`Linear` layers in total. Initialise **every** `Linear` layer with
`nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")` and `nn.init.zeros_(bias)`.
""")
nb.solution("plain-mlp", '''
def plain_mlp(depth: int, width: int) -> nn.Module:
    """A plain (shortcut-free) classifier with `depth` Linear layers, Kaiming-initialised and batch-normalised."""
    ### BEGIN SOLUTION
    layers: list[nn.Module] = [nn.Flatten()]
    in_features = 784
    for _ in range(depth - 1):
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, 10))
    model = nn.Sequential(*layers)
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return model
    ### END SOLUTION
''')
nb.md("""
The checks run your network on the GPU when there is one. They count the `Linear` layers that run, check the order
Linear -> BatchNorm -> ReLU, zero a middle layer to make sure no path goes around it, and measure each layer's
initial weight spread.
""")
nb.test("plain-depth", 2, '''
check_plain_mlp(plain_mlp, only=["depth", "device"])
### BEGIN HIDDEN TESTS
for _depth in (3, 32):
    _linears = [m for m in plain_mlp(_depth, 24).modules() if isinstance(m, nn.Linear)]
    assert len(_linears) == _depth, f"plain_mlp({_depth}, 24) must have {_depth} Linear layers, has {len(_linears)}"
    assert _linears[0].in_features == 784 and _linears[-1].out_features == 10
### END HIDDEN TESTS
''')
nb.test("plain-units", 2, '''
check_plain_mlp(plain_mlp, only=["units", "no skip"])
### BEGIN HIDDEN TESTS
_modules = list(plain_mlp(7, 24).modules())
_norms = [m for m in _modules if isinstance(m, nn.BatchNorm1d)]
_linears = [m for m in _modules if isinstance(m, nn.Linear)]
assert len(_norms) == len(_linears) - 1, "one BatchNorm1d per hidden Linear layer, none after the output layer"
assert all(n.num_features == 24 for n in _norms), "BatchNorm1d(width): one scale and shift per hidden unit"
### END HIDDEN TESTS
''')
nb.test("plain-init", 2, '''
check_plain_mlp(plain_mlp, only="init")
### BEGIN HIDDEN TESTS
for _layer in (m for m in plain_mlp(3, 256).modules() if isinstance(m, nn.Linear)):
    _target = kaiming_std(_layer.in_features)
    assert abs(_layer.weight.std().item() / _target - 1) < 0.1, "Kaiming std sqrt(2 / fan_in) on every Linear layer"
    assert _layer.bias.abs().max().item() == 0, "biases start at zero"
### END HIDDEN TESTS
''')
nb.md("""
The course's own builder, `models.make_mlp`, makes the same network when asked for ReLU, Kaiming init and BatchNorm
(later lessons use it). Same parameter count:
""")
nb.code('''
def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


yours = plain_mlp(8, 64)
course = models.make_mlp(8, 64, activation="relu", init="kaiming", norm="batch")
print(yours)
print(f"plain_mlp(8, 64): {count(yours):,} parameters; models.make_mlp(8, 64, ...): {count(course):,}")
assert count(yours) == count(course)
''', tags=["uses-exercise"])
nb.md("""
## 3. The gradients do not vanish

We compare two depths, **SHALLOW** and **DEEP** `Linear` layers, all 64 units wide. One forward and backward pass on a
batch of 256 training images gives every layer's weight-gradient norm (`gradients.gradient_profile`). For contrast,
the plot also shows the network of lesson 01: the deep plain network with sigmoids and PyTorch's default
initialisation.
""".replace("SHALLOW", "8").replace("DEEP", "32"))
nb.code('''
SHALLOW, DEEP, WIDTH = 8, 32, 64
images, labels = data.train.images[:256], data.train.labels[:256]


def profile(model: nn.Module) -> list[float]:
    """Per-layer weight-gradient norms of a fresh model on our batch, in training mode."""
    return gradients.gradient_profile(model.to(device).train(), images, labels)


rc.seed_everything(0)
profiles = {
    f"plain, {SHALLOW} layers": profile(plain_mlp(SHALLOW, WIDTH)),
    f"plain, {DEEP} layers": profile(plain_mlp(DEEP, WIDTH)),
    f"{DEEP} layers, sigmoid, default init (lesson 01)": profile(models.make_mlp(DEEP, WIDTH, activation="sigmoid")),
}
ratios = {name: gradients.first_to_last_ratio(norms) for name, norms in profiles.items()}
for name, ratio in ratios.items():
    print(f"{name:<46} first/last gradient-norm ratio {ratio:.2g}")
plots.plot_grad_norms(profiles, title="gradient norm per layer at initialisation")
plt.show()
''', tags=["uses-exercise"])
nb.md("""
With Kaiming init and BatchNorm the first layer receives **at least as much** gradient as the last, at both depths:
nothing vanishes. The sigmoid network of lesson 01 shows what vanishing looks like on the same axes: at 32 layers its
first layers' gradients underflow to exactly 0 in float32 (so its ratio prints as 0, and the plot draws those layers
at its floor of $10^{-30}$).
""")
nb.code('''
shallow_ratio, deep_ratio = ratios[f"plain, {SHALLOW} layers"], ratios[f"plain, {DEEP} layers"]
assert shallow_ratio >= 1 and deep_ratio >= 1, "Kaiming + BatchNorm: no vanishing gradient"
assert ratios[f"{DEEP} layers, sigmoid, default init (lesson 01)"] < 1e-10
''', tags=["uses-exercise"])
nb.md("""
Look closer and the plain networks' gradients *grow* toward the input. The ratio of the two profiles gives the
growth per extra layer:
""")
nb.code('''
growth_per_layer = (deep_ratio / shallow_ratio) ** (1 / (DEEP - SHALLOW))
print(f"first/last ratio: {shallow_ratio:.1f} at {SHALLOW} layers, {deep_ratio:.0f} at {DEEP} layers; "
      f"about x{growth_per_layer:.2f} per extra layer")
assert 1.0 < growth_per_layer < 1.5
''', tags=["uses-exercise"])
nb.md("""
This mild, steady growth is a known property of batch-normalised plain networks at initialisation (Yang et al., 2019,
*A Mean Field Theory of Batch Normalization*, derive it). It is the opposite of vanishing, and far from the collapse
of lesson 01; He et al. were right that the first-order problem had been fixed. Whatever holds the deep network back
below, it is not a gradient that fails to arrive.

## 4. Train both: the deeper network trains worse

Both networks get the same data, the same optimiser (SGD with momentum 0.9, as He et al. used), the same learning
rate, the same number of epochs and the same seed. We record the loss and accuracy on the **training** set for every
epoch (averaged over the epoch's mini-batches), and the test accuracy.
""")
nb.code('''
EPOCHS, LR = 5, 0.01


def train(depth: int) -> tuple[nn.Module, History]:
    """Seed, build your plain network, train it with SGD + momentum: both depths get identical conditions."""
    rc.seed_everything(0)
    model = plain_mlp(depth, WIDTH)
    return model, fit(model, data, epochs=EPOCHS, lr=LR, optimizer="sgd", progress=False)


trained = {depth: train(depth) for depth in (SHALLOW, DEEP)}
histories = {f"plain, {depth} layers": history for depth, (_, history) in trained.items()}
for depth, (model, history) in trained.items():
    print(f"{depth:>2} layers ({count(model):,} parameters): training loss {history.train_loss[-1]:.3f}, "
          f"training accuracy {history.train_accuracy[-1]:.1%}, test accuracy {history.test_accuracy[-1]:.1%} "
          f"({history.seconds:.0f} s)")
figure = plots.plot_history(histories, metrics=("train_loss", "train_accuracy", "test_accuracy"))
figure.suptitle("plain MLPs on Fashion-MNIST: the deeper one trains worse (He et al. 2015, Fig. 1, in small)")
figure.tight_layout()
plt.show()
''', tags=["uses-exercise"])
nb.md("""
This is Figure 1 of He et al. in small. The 32-layer network has more parameters and, as section 3 showed, a
gradient that reaches every layer; both networks saw the same images in the same order with the same optimiser. Yet
the deeper one's **training** loss is higher at every epoch, and its training accuracy lower. Its test accuracy is
lower too.
""")
nb.code('''
shallow, deep = histories[f"plain, {SHALLOW} layers"], histories[f"plain, {DEEP} layers"]
assert all(d > s for d, s in zip(deep.train_loss, shallow.train_loss, strict=True)), "higher at every epoch"
assert deep.train_loss[-1] > shallow.train_loss[-1] + 0.2
assert deep.train_accuracy[-1] < shallow.train_accuracy[-1] - 0.05
assert deep.test_accuracy[-1] < shallow.test_accuracy[-1]
''', tags=["uses-exercise"])
nb.md("""
Is it overfitting? No: overfitting would show the deep network fitting its training data *better* and the test data
worse. The curves above average over each epoch while the weights change; to compare like with like, evaluate both
trained networks once more, on the whole training set and on the test set, with the same weights:
""")
nb.code('''
final = {depth: (evaluate(model, data.train), evaluate(model, data.test)) for depth, (model, _) in trained.items()}
for depth, ((train_loss, train_accuracy), (test_loss, test_accuracy)) in final.items():
    print(f"{depth:>2} layers: training loss {train_loss:.3f} / accuracy {train_accuracy:.1%};  "
          f"test loss {test_loss:.3f} / accuracy {test_accuracy:.1%}")
''', tags=["uses-exercise"])
nb.md("""
With the same weights on both splits, the 32-layer network's loss on its own training set is clearly higher than the
8-layer network's, and its training accuracy is close to its test accuracy: it has not memorised the training set, it
has not even fitted it. That is degradation, not overfitting. If anything, the 8-layer network is the one that
starts to overfit: its training accuracy is a little above its test accuracy.
""")
nb.code('''
(shallow_train, shallow_test), (deep_train, deep_test) = final[SHALLOW], final[DEEP]
assert deep_train[0] > shallow_train[0] + 0.2, "the deep network fits its training data worse"
assert deep_train[1] < shallow_train[1] - 0.05
assert abs(deep_train[1] - deep_test[1]) < 0.05, "and it is not memorising: train and test accuracy are close"
assert shallow_train[1] - shallow_test[1] > deep_train[1] - deep_test[1]
''', tags=["uses-exercise"])
nb.md("""
### Exercise 2: `diagnose(shallow, deep)`

Turn the table of section 1 into code. Given the `History` of a shallower and of a deeper network trained the same
way, return

- `"degradation"` if the deeper network ends with the **higher training loss** (`train_loss[-1]`),
- otherwise `"overfitting"` if it ends with the higher **test** loss (`test_loss[-1]`),
- otherwise `"deeper is better"`.
""")
nb.solution("diagnose", '''
def diagnose(shallow: History, deep: History) -> str:
    """Name what depth did: "degradation", "overfitting" or "deeper is better", from the final losses."""
    ### BEGIN SOLUTION
    if deep.train_loss[-1] > shallow.train_loss[-1]:
        return "degradation"
    if deep.test_loss[-1] > shallow.test_loss[-1]:
        return "overfitting"
    return "deeper is better"
    ### END SOLUTION
''')
nb.test("diagnose-degradation", 1, '''
check_diagnose(diagnose, only="degradation")
### BEGIN HIDDEN TESTS
_shallow = History(train_loss=[0.5, 0.3], test_loss=[0.5, 0.4])
assert diagnose(_shallow, History(train_loss=[0.2, 0.31], test_loss=[0.3, 0.41])) == "degradation"
### END HIDDEN TESTS
''')
nb.test("diagnose-overfitting", 1, '''
check_diagnose(diagnose, only="overfitting")
### BEGIN HIDDEN TESTS
_shallow = History(train_loss=[0.5, 0.3], test_loss=[0.5, 0.4])
assert diagnose(_shallow, History(train_loss=[0.6, 0.29], test_loss=[0.6, 0.41])) == "overfitting"
assert diagnose(_shallow, History(train_loss=[0.6, 0.3], test_loss=[0.6, 0.39])) == "deeper is better"
### END HIDDEN TESTS
''')
nb.md("""
Your diagnosis of our two networks:
""")
nb.code('''
verdict = diagnose(shallow, deep)
print(f"{SHALLOW} vs {DEEP} layers: {verdict}")
assert verdict == "degradation"
''', tags=["uses-exercise"])
nb.md("""
## 5. What this means

The deeper plain network has more parameters, healthy gradients, and could represent everything the shallow one
does; yet with the same training budget it fits the training data worse. Depth made the network **harder to
optimise**. He et al.'s answer, in lesson 03, changes what the layers have to learn: instead of asking a block of
layers to learn a mapping $H(x)$ outright, let it learn the residual $F(x) = H(x) - x$ and add $x$ back. A block that
should do nothing then only needs $F = 0$, which is easy to reach.

## Summary

- Kaiming initialisation and BatchNorm keep the gradient alive through 32 plain layers: the first layer's gradient
  is not smaller than the last's (it grows mildly with depth).
- Yet the 32-layer plain network ends training with a clearly higher **training** loss, and a lower training
  accuracy, than the 8-layer one: the degradation problem of He et al. (2015), Fig. 1, in small.
- Overfitting would show the opposite on the training set. Degradation is an optimisation difficulty; the fix is
  architectural (residual connections), not more regularisation.

## Going further

- He, Zhang, Ren & Sun (2015), *Deep Residual Learning for Image Recognition*, section 1 and Figures 1 and 4.
- Ioffe & Szegedy (2015), *Batch Normalization*; He, Zhang, Ren & Sun (2015), *Delving Deep into Rectifiers*.
- Balduzzi et al. (2017), *The Shattered Gradients Problem: If resnets are the answer, then what is the question?*,
  and Yang et al. (2019), *A Mean Field Theory of Batch Normalization*: two later explanations of why deep plain
  networks are hard to train even when their gradients do not vanish.
- Train longer (more epochs) or with Adam: does the gap close, or only shrink? Try depths 4, 16 and 48.
- Next: lesson 03 adds the shortcut, and the 32-layer network trains.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
