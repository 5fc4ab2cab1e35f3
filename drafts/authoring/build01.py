import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "01_vanishing_gradients"
nb = NB(SLUG)

nb.md(f"""
# Lesson 01 · Vanishing (and exploding) gradients in plain deep networks

{badge(SLUG)}

Stack enough layers and a network should be able to represent more. Yet for years, deep *plain* networks
(one layer feeding the next, nothing else) were notoriously hard to train. This lesson measures the first reason why:
the gradient that reaches the early layers can be **orders of magnitude smaller** (or larger) than the one at the output.

**By the end of this lesson you can**

1. explain, with the chain rule, why a product of many small derivatives vanishes, and bound it for the sigmoid;
2. measure the gradient norm of every layer of a model after one `backward()`;
3. show with numbers how depth, activation, initialisation, normalisation and skip connections change the picture;
4. use an interactive explorer to build your own intuition.

Exercises are marked **Exercise**; each has a check cell that prints PASS, or FAIL with a hint.
""")
nb.code(setup_cell())
nb.code('''
import matplotlib.pyplot as plt
import torch
from torch import nn

import residual_course as rc
from residual_course import gradients, models, plots
from residual_course.checks import check_layer_grad_norms, check_sigmoid_derivative
from residual_course.data import load_dataset
from residual_course.training import fit
from residual_course.widgets import GradientExplorer

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')
nb.md("""
## 1. Real images, one batch

We use Fashion-MNIST: 70,000 greyscale 28x28 images of clothes in 10 classes. It is harder than digits, which makes
the differences between architectures visible. The whole data set is loaded once, as tensors, on the device.
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
images, labels = data.train.images[:256], data.train.labels[:256]
print(f"{len(data.train):,} training and {len(data.test):,} test images; a batch: {tuple(images.shape)}")
''')
nb.md(r"""
## 2. The chain rule multiplies

A plain network computes $h_{\ell} = \sigma(W_{\ell} h_{\ell-1} + b_{\ell})$, layer after layer. By the chain rule, the
gradient of the loss with respect to an early layer's output is a **product** with one factor per later layer:

$$\frac{\partial \mathcal{L}}{\partial h_{1}} = \frac{\partial \mathcal{L}}{\partial h_{L}}\,
\prod_{\ell=2}^{L} \operatorname{diag}\big(\sigma'(z_{\ell})\big)\, W_{\ell}$$

If every factor shrinks the signal, the product shrinks geometrically with depth: the gradient **vanishes**. If every
factor grows it, the gradient **explodes**. The sigmoid $\sigma(z) = 1/(1+e^{-z})$ is the classic culprit: its slope is
$\sigma'(z) = \sigma(z)\,(1-\sigma(z))$, which is never more than $1/4$.

### Exercise 1: the sigmoid's derivative

Write `sigmoid_derivative(z)`: the derivative of the sigmoid, elementwise, for a tensor `z` of any shape, on whatever
device `z` lives. Use torch operations (no Python loops), and keep it finite for large $|z|$.
""")
nb.solution("sigmoid-derivative", '''
def sigmoid_derivative(z: torch.Tensor) -> torch.Tensor:
    """d sigmoid(z) / dz, elementwise."""
    ### BEGIN SOLUTION
    s = torch.sigmoid(z)
    return s * (1 - s)
    ### END SOLUTION
''')
nb.test("check-sigmoid-derivative", 2, '''
check_sigmoid_derivative(sigmoid_derivative)
### BEGIN HIDDEN TESTS
_z = torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0], device=device)
_d = sigmoid_derivative(_z)
assert torch.isfinite(_d).all(), f"sigmoid_derivative must stay finite for large |z|, got {_d.tolist()}"
assert float(_d[2]) == 0.25 and float(_d.max()) == 0.25
_cube = torch.randn(3, 4, 5, device=device)
assert sigmoid_derivative(_cube).shape == (3, 4, 5), "sigmoid_derivative must keep the input's shape"
### END HIDDEN TESTS
''')
nb.md("""
See it: the slope is a bump of height 1/4 at $z = 0$, and almost zero once the unit saturates ($|z| > 5$).
""", )
nb.code('''
z = torch.linspace(-8, 8, 401, device=device)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(z.cpu(), torch.sigmoid(z).cpu(), label="sigmoid(z)")
ax.plot(z.cpu(), sigmoid_derivative(z).cpu(), label="sigmoid'(z)")
ax.axhline(0.25, color="grey", linestyle=":", label="1/4")
ax.set_xlabel("z")
ax.legend()
plt.show()
''', tags=["uses-exercise"])
nb.md(r"""
Along any path from the output back to layer 1 of a 20-layer sigmoid network, the activation slopes alone contribute a
factor of at most $0.25^{20}$. Unless the weights make up for it, a factor like that leaves the first layers with
almost no learning signal.
""")
nb.code('''
bound = gradients.sigmoid_derivative_bound(20)
print(f"0.25 ** 20 = {bound:.2e}")
assert bound < 1e-12
''')
nb.md("""
### Exercise 2: gradient norms, layer by layer

To *see* vanishing gradients we measure them. After `loss.backward()`, every parameter `p` holds its gradient in
`p.grad`. Write `weight_grad_norms(model)`: a list with the 2-norm of the weight gradient of each `nn.Linear` layer of
`model`, from the input layer to the output layer (use `model.modules()`; it lists layers in the order they were
created). Return plain floats. Only read the gradients: do not call `backward()` or zero them.
""")
nb.solution("weight-grad-norms", '''
def weight_grad_norms(model: nn.Module) -> list[float]:
    """The 2-norm of each Linear layer's weight gradient, input layer first."""
    ### BEGIN SOLUTION
    return [layer.weight.grad.norm().item() for layer in model.modules() if isinstance(layer, nn.Linear)]
    ### END SOLUTION
''')
nb.test("check-weight-grad-norms", 3, '''
check_layer_grad_norms(weight_grad_norms)
### BEGIN HIDDEN TESTS
# Normalisation layers have 1-D weights too: only the Linear layers count.
_model = models.make_mlp(depth=5, width=12, activation="relu", norm="batch", in_features=7, num_classes=3).to(device)
_x = torch.randn(8, 7, device=device)
nn.functional.cross_entropy(_model(_x), torch.zeros(8, dtype=torch.long, device=device)).backward()
_expected = [m.weight.grad.norm().item() for m in _model.modules() if isinstance(m, nn.Linear)]
_got = [float(v) for v in weight_grad_norms(_model)]
assert len(_got) == 5, f"a model with 5 Linear layers (and BatchNorm layers) needs 5 norms, got {len(_got)}"
assert torch.allclose(torch.tensor(_got), torch.tensor(_expected), rtol=1e-4)
### END HIDDEN TESTS
''')
nb.md("""
## 3. Measure it: a 20-layer sigmoid network, plain and residual

`models.make_mlp` builds the networks this lesson needs: `depth` Linear layers of `width` units, with a chosen
activation, initialisation and normalisation. With `skip=True`, each hidden layer becomes a *residual* unit
$h + \\sigma(Wh + b)$: the input is added back to the output, which gives the gradient a path that bypasses the
shrinking slopes. (Lesson 03 is all about why this works.)

One backward pass on the batch, then your function reads the norms.
""")
nb.code('''
def measure(**settings) -> list[float]:
    """Per-layer gradient norms of a fresh 20-layer MLP on our batch (seeded: same settings, same numbers)."""
    rc.seed_everything(0)
    model = models.make_mlp(**{"depth": 20, "width": 64, **settings}).to(device)
    nn.functional.cross_entropy(model(images), labels).backward()
    return weight_grad_norms(model)


plain = measure(activation="sigmoid")
residual = measure(activation="sigmoid", skip=True)
plain_ratio, residual_ratio = plain[0] / plain[-1], residual[0] / residual[-1]
print(f"first/last gradient-norm ratio, plain:    {plain_ratio:.1e}")
print(f"first/last gradient-norm ratio, residual: {residual_ratio:.1e}")
plots.plot_grad_norms({"plain": plain, "residual (skip)": residual}, title="20-layer sigmoid MLP, default init")
plt.show()
''', tags=["uses-exercise"])
nb.md("""
The first layer of the plain network receives a gradient more than **ten orders of magnitude** smaller than the last
layer's: in practice it does not learn at all. The residual network, identical except for the additions, keeps every
layer within a couple of orders of magnitude.
""")
nb.code('''
assert plain_ratio < 1e-10, plain_ratio
assert residual_ratio > 1e-2, residual_ratio
assert residual_ratio / plain_ratio > 1e8
''', tags=["uses-exercise"])
nb.md("""
Why so small? The forward activations tell part of the story: with PyTorch's default initialisation the
pre-activations are small, so every sigmoid sits near 0.5, where its slope is close to its maximum 1/4, and the
weights are small too. Every layer multiplies the backward signal by well under one.
""")
nb.code('''
rc.seed_everything(0)
deep_sigmoid = models.make_mlp(depth=20, width=64, activation="sigmoid").to(device)
stats = gradients.activation_stats(deep_sigmoid, images)
for s in stats[:2] + stats[-2:]:
    print(f"{s.name:>12}: mean {s.mean:.3f}  std {s.std:.4f}  saturated {s.saturated_fraction:.1%}")
''')
nb.md("""
## 4. What changes the picture: activation, initialisation, normalisation

Initialisation schemes scale the weights so that signals keep their size from layer to layer:
**Xavier/Glorot** (2010) for symmetric activations like tanh, **Kaiming/He** (2015) for ReLU. **Batch normalisation**
(2015) re-centres and re-scales every layer's pre-activations during training. Here is the first/last ratio of the
plain 20-layer network for each combination (1 means "the first layer gets as much gradient as the last").
""")
nb.code('''
def first_to_last_ratio(activation: str, init: str, norm: str) -> float:
    """First/last gradient-norm ratio of a fresh plain 20-layer MLP (the course's own gradient probe)."""
    rc.seed_everything(0)
    model = models.make_mlp(20, 64, activation, init, norm).to(device)
    norms = gradients.gradient_profile(model, images, labels)
    return norms[0] / norms[-1]


ratios = {(a, i, n): first_to_last_ratio(a, i, n)
          for a in models.ACTIVATIONS for i in models.INITS for n in ("none", "batch")}
print(f"{'activation':<10} {'init':<8} {'no norm':>10} {'BatchNorm':>10}")
for a in models.ACTIVATIONS:
    for i in models.INITS:
        print(f"{a:<10} {i:<8} {ratios[a, i, 'none']:>10.1e} {ratios[a, i, 'batch']:>10.1e}")
''')
nb.md("""
Read the table:

- **sigmoid, default init**: the gradient all but disappears (the result of section 3).
- **ReLU with Kaiming init** keeps the ratio near 1: the init was designed for exactly this.
- **BatchNorm** rescues even the sigmoid network: He et al. (2015) note that normalised initialisation and
  BatchNorm *largely* solve vanishing gradients. Lesson 02 shows that deep plain networks still train badly, for
  another reason.
- Some combinations overshoot: a ratio far above 1 means the gradient **grows** toward the input (exploding
  gradients), as with ReLU + BatchNorm under the default init here.
""")
nb.code('''
assert ratios["sigmoid", "default", "none"] < 1e-10
assert 0.1 < ratios["relu", "kaiming", "none"] < 10
assert ratios["sigmoid", "default", "batch"] > 0.1
assert ratios["relu", "default", "batch"] > 10
''')
nb.md("""
## 5. Explore

Move the controls. Each change builds a fresh plain network (left) and, when "compare with skip connections" is on,
the same network with residual units (right), runs one backward pass on our batch and redraws the per-layer gradient
norms on a log scale. Things to try: raise the depth to 50 with sigmoid; switch to tanh with Xavier; turn on BatchNorm;
compare ReLU with default and with Kaiming init. (Past about 30 sigmoid layers the first layers' gradients
underflow: they become exactly 0 in 32-bit floats, and the plot draws them at its floor of $10^{-30}$.)
""")
nb.code('''
explorer = GradientExplorer(images, labels)
explorer
''')
nb.md("""
## 6. Does it matter for training?

Gradients are only the means; learning is the end. Train the plain and the residual 20-layer sigmoid networks with
the same optimiser (SGD with momentum, which, unlike Adam, does not rescale each weight's step) and compare.
""")
nb.code('''
histories = {}
for name, skip in [("plain", False), ("residual", True)]:
    rc.seed_everything(0)
    model = models.make_mlp(depth=20, width=64, activation="sigmoid", skip=skip)
    histories[name] = fit(model, data, epochs=3, lr=0.02, optimizer="sgd", progress=False)
    print(f"{name:>8}: test accuracy {histories[name].test_accuracy[-1]:.1%} "
          f"after {len(histories[name].test_accuracy)} epochs ({histories[name].seconds:.0f} s)")
figure = plots.plot_history(histories)
figure.axes[0].set_yscale("log")
plt.show()
''')
nb.md("""
The plain network stays at chance level (10% for ten classes): its first layers never receive a usable gradient. The
residual network, with exactly as many parameters, learns. (Its loss starts high: every residual unit adds a
positive sigmoid output, so activations grow along the depth and the first logits are large. Normalisation, in
lessons 02 and 03, tames that.)
""")
nb.code('''
assert histories["plain"].test_accuracy[-1] < 0.2
assert histories["residual"].test_accuracy[-1] > histories["plain"].test_accuracy[-1] + 0.2
''')
nb.md("""
## Summary

- Backpropagation multiplies one factor per layer; many factors below one make the early layers' gradient vanish,
  many above one make it explode.
- The sigmoid's slope is at most 1/4, so depth alone can shrink its gradient like $0.25^L$; at 20 layers we measured
  a first/last ratio below $10^{-10}$.
- Initialisation (Xavier, Kaiming), better activations (ReLU) and BatchNorm fix most of it; adding the input back
  (a skip connection) gives the gradient a path that does not shrink.

## Going further

- Glorot & Bengio (2010), *Understanding the difficulty of training deep feedforward neural networks*.
- He, Zhang, Ren & Sun (2015), *Delving Deep into Rectifiers* (Kaiming initialisation).
- Ioffe & Szegedy (2015), *Batch Normalization*.
- In the explorer, find a setting where the gradient explodes, then one that fixes it without skip connections.
- Next: lesson 02 shows that even with healthy gradients, deeper plain networks train *worse*: the degradation problem.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
