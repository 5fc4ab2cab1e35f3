import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "03_residual_learning"
nb = NB(SLUG)

nb.md(f"""
# Lesson 03 · Residual learning

{badge(SLUG)}

Lesson 02 ended on a puzzle: with Kaiming initialisation and BatchNorm the gradients of a plain MLP no longer vanish,
yet its 32-layer version reaches a *higher training loss* than its 8-layer version. That is the **degradation
problem**, and it is a failure of optimisation, not overfitting. He, Zhang, Ren & Sun (2015) answered it with one
addition per block: let the layers learn a *residual* and add the block's input back.

**By the end of this lesson you can**

1. say exactly what a residual block learns: $F(x) = H(x) - x$;
2. write a fully connected residual block and show that with $F = 0$ it is the identity (then ReLU);
3. compute a block's Jacobian and see $\\partial(x + F(x))/\\partial x = I + \\partial F/\\partial x$ in numbers;
4. train a 32-layer residual MLP next to the plain one of the same depth, and watch it train where the plain one
   degrades.

Each exercise has check cells: PASS, or FAIL with what is wrong.
""")
nb.code(setup_cell())
nb.code('''
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from torch import nn

import residual_course as rc
from residual_course import gradients, models, plots
from residual_course.checks.residual_mlp import check_block_jacobian, check_residual_mlp_block
from residual_course.data import load_dataset
from residual_course.training import fit
from residual_course.widgets import GradientExplorer

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')
nb.md(r"""
## 1. What a residual block learns

Call $H(x)$ the mapping that a few stacked layers *should* compute on their input $x$. A plain network asks those
layers to fit $H$ directly. A residual block asks them for something else: the layers compute

$$F(x) = H(x) - x,$$

and a **shortcut** adds the input back, so the block outputs $F(x) + x = H(x)$. $F$ is the *residual*: how far the
desired mapping is from simply passing the input on.

> **A correction.** You may read that the residual is "the actual output minus the expected output". That describes
> the *error* of a prediction, what a loss function measures. It is not what a residual block learns. The residual
> of residual learning is $F(x) = H(x) - x$: the difference between the mapping the block should compute and the
> block's **own input**. No target or label appears in it.

Why should that help? He et al. argue from the degradation problem itself. A deeper network could always match a
shallower one: copy the shallow one and make the extra layers the identity. That the deeper plain network trains
*worse* suggests that stacked nonlinear layers find the identity hard to fit. In a residual block the identity is
the easiest thing there is: $F(x) = 0$, for example all weights of the branch at zero. More generally, when the
best $H$ is close to the identity, the layers only have to learn a small correction.
""")
nb.md(r"""
## 2. A fully connected residual block

The block is the MLP version of the original ResNet block (lesson 04 builds the convolutional one), "post-activation"
because the last ReLU comes after the addition:

```
x ──► Linear ─► BatchNorm1d ─► ReLU ─► Linear ─► BatchNorm1d ──► (+) ─► ReLU ─► out
 │                                                              ▲
 └──────────────────────── shortcut: x itself ──────────────────┘
```

$$\text{out} = \mathrm{ReLU}\big(x + F(x)\big), \qquad F = \text{Linear} \to \text{BN} \to \text{ReLU} \to
\text{Linear} \to \text{BN}.$$

### Exercise 1: `ResidualMLPBlock(width)`

- **Constructor**: `ResidualMLPBlock(width: int)`; both Linear layers map `width` features to `width` features
  (with or without bias: the BatchNorm after each has its own shift, so both are accepted).
- **Forward**: takes a batch `x` of shape `(batch, width)` and returns `relu(x + F(x))`, same shape.
- The branch **ends in BatchNorm**: no ReLU before the addition. The shortcut is `x` itself.

Parameter count: two weight matrices $2w^2$, two bias vectors $2w$, and two BatchNorms with a scale and a shift
each, $4w$: in total $2w^2 + 6w$.
""")
nb.solution("residual-mlp-block", '''
class ResidualMLPBlock(nn.Module):
    """relu(x + F(x)), F = Linear-BN-ReLU-Linear-BN: the layers learn only the residual F(x) = H(x) - x."""

    def __init__(self, width: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.branch = nn.Sequential(
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
        )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return torch.relu(x + self.branch(x))
        ### END SOLUTION
''')
nb.md("""
The checks run your block on the GPU when there is one. The second one sets **every parameter to zero**, so that
$F(x) = 0$; in evaluation mode a correct block then returns exactly `relu(x)`. The third checks that the gradient
still reaches `x` in that case: through the shortcut.
""")
nb.test("block-shape", 1, '''
check_residual_mlp_block(ResidualMLPBlock, only=["shape", "device"])
### BEGIN HIDDEN TESTS
check_residual_mlp_block(ResidualMLPBlock, only=["shape", "device"], width=5)
_block = ResidualMLPBlock(32).to(device)
assert _block(torch.randn(3, 32, device=device)).shape == (3, 32)
assert sum(p.numel() for p in _block.parameters()) in (2 * 32**2 + 6 * 32, 2 * 32**2 + 4 * 32)
### END HIDDEN TESTS
''')
nb.test("block-identity", 2, '''
check_residual_mlp_block(ResidualMLPBlock, only="identity")
### BEGIN HIDDEN TESTS
check_residual_mlp_block(ResidualMLPBlock, only="identity", width=24)
_block = ResidualMLPBlock(6).to(device).eval()
with torch.no_grad():
    for _p in _block.parameters():
        _p.zero_()
    _x = torch.rand(4, 6, device=device) + 0.1
    assert torch.equal(_block(_x), _x), "with F = 0 a positive input must come out unchanged"
### END HIDDEN TESTS
''')
nb.test("block-gradient", 1, '''
check_residual_mlp_block(ResidualMLPBlock, only="gradient")
### BEGIN HIDDEN TESTS
check_residual_mlp_block(ResidualMLPBlock, only="gradient", width=24)
### END HIDDEN TESTS
''')
nb.test("block-batchnorm", 1, '''
check_residual_mlp_block(ResidualMLPBlock, only="batchnorm")
### BEGIN HIDDEN TESTS
check_residual_mlp_block(ResidualMLPBlock, only="batchnorm", width=8)
### END HIDDEN TESTS
''')
nb.md("""
## 3. The identity is easy to learn

Put the claim to a test. Stack 10 blocks (20 Linear layers) and train them to do nothing: output their input.
The inputs are non-negative, like the outputs of a ReLU layer, so the identity is exactly what a residual stack
computes when all its branches output zero. The plain stack has the same layers, without the shortcuts:
""")
nb.code('''
def plain_mlp_block(width: int) -> nn.Module:
    """Your block's layers without the shortcut: Linear-BN-ReLU-Linear-BN-ReLU."""
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU())


def learn_identity(make_block: Callable[[int], nn.Module], blocks: int = 10, width: int = 64,
                   steps: int = 200) -> float:
    """Train a stack of blocks to copy its (non-negative) input; return the final mean squared error."""
    rc.seed_everything(0)
    stack = nn.Sequential(*[make_block(width) for _ in range(blocks)]).to(device)
    optimizer = torch.optim.Adam(stack.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.relu(torch.randn(256, width, device=device))
        loss = (stack(x) - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    stack.eval()
    with torch.no_grad():
        x = torch.relu(torch.randn(4096, width, device=device))
        return (stack(x) - x).square().mean().item()


identity_mse = {"plain": learn_identity(plain_mlp_block), "residual": learn_identity(ResidualMLPBlock)}
baseline = torch.relu(torch.randn(100_000, device=device)).var().item()
for name, mse in identity_mse.items():
    print(f"{name:>8}: mean squared error {mse:.3f} after 200 steps")
print(f"predicting each feature's mean would give {baseline:.3f}")
''', tags=["uses-exercise"])
nb.md("""
After the same 200 Adam steps the plain stack is no better than always answering the average input: it has not
found the identity at all. The residual stack, which only had to push its branches toward zero, is several times
closer.
""")
nb.code('''
assert identity_mse["plain"] > 0.8 * baseline
assert identity_mse["residual"] < 0.3 * identity_mse["plain"]
''', tags=["uses-exercise"])
nb.md(r"""
## 4. The gradient of $x + F(x)$

Differentiate the block's sum with respect to its input:

$$\frac{\partial\,(x + F(x))}{\partial x} = I + \frac{\partial F}{\partial x}.$$

Backpropagation multiplies the gradient arriving at the output by this Jacobian (transposed), so the gradient at the
input is the gradient at the output **plus** a correction through the branch:

$$\frac{\partial \mathcal{L}}{\partial x} = \frac{\partial \mathcal{L}}{\partial y}
+ \frac{\partial \mathcal{L}}{\partial y}\,\frac{\partial F}{\partial x}.$$

Through $L$ plain layers the gradient meets a product of $L$ Jacobians $\prod_\ell J_{F_\ell}$, which shrinks or
grows geometrically (lesson 01). Through $L$ residual blocks it meets $\prod_\ell (I + J_{F_\ell})$: when the branches
are small, every factor is close to $I$, and the product is too. (In our post-activation block the final ReLU
multiplies by a 0/1 diagonal matrix $D$, the units it lets through: $J = D\,(I + \partial F/\partial x)$.)

### Exercise 2: `block_jacobian(block, x)`

Write the Jacobian of a block at **one** input vector.

- `block`: anything that maps a batch `(N, width)` to a batch `(N, width)`, e.g. a module in eval mode, or a plain
  function. It only accepts batches: call it on `x.unsqueeze(0)` and take row 0 of the result.
- `x`: one input vector of shape `(width,)`.
- Return a tensor `J` of shape `(width, width)` with `J[i, j]` = $\partial\,\text{out}_i / \partial x_j$ (one row per
  output), on `x`'s device. `torch.autograd.functional.jacobian` does the work; `torch.autograd.grad` once per output
  component works too.
""")
nb.solution("block-jacobian", '''
def block_jacobian(block: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d block(x) / dx at one input vector x: J[i, j] = d out_i / d x_j, shape (width, width)."""
    ### BEGIN SOLUTION
    return torch.autograd.functional.jacobian(lambda v: block(v.unsqueeze(0)).squeeze(0), x)
    ### END SOLUTION
''')
nb.md("""
The checks compare your function with Jacobians known in closed form: $x \\mapsto Wx + x$ has Jacobian $W + I$, and
$x \\mapsto \\tanh(Wx) + x$ has $\\mathrm{diag}(1 - \\tanh^2(Wx))\\,W + I$.
""")
nb.test("jacobian-shape", 1, '''
check_block_jacobian(block_jacobian, only="shape")
### BEGIN HIDDEN TESTS
check_block_jacobian(block_jacobian, only="shape", width=9)
_layers = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16)).to(device).eval()
_jacobian = block_jacobian(_layers, torch.randn(16, device=device))
assert _jacobian.shape == (16, 16) and _jacobian.device.type == device.type
### END HIDDEN TESTS
''')
nb.test("jacobian-reference", 2, '''
check_block_jacobian(block_jacobian, only="reference")
### BEGIN HIDDEN TESTS
check_block_jacobian(block_jacobian, only="reference", width=9)
_layers = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 7)).to(device).eval()
_x = torch.randn(7, device=device)
_expected = torch.autograd.functional.jacobian(lambda v: _layers(v[None])[0] + v, _x)
assert torch.allclose(block_jacobian(lambda b: _layers(b) + b, _x), _expected, atol=1e-5)
### END HIDDEN TESTS
''')
nb.md(r"""
### The identity part, in numbers

Take a branch $F$ = Linear-BN-ReLU-Linear-BN of width 64, freshly initialised and in eval mode, and the function
$x \mapsto x + F(x)$. Compute both Jacobians with your function; their difference must be exactly the identity
matrix.
""")
nb.code('''
def make_branch(width: int = 64) -> nn.Module:
    """The residual branch F of a block, in eval mode."""
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, width), nn.BatchNorm1d(width)).to(device).eval()


rc.seed_everything(0)
branch = make_branch()
x = torch.randn(64, device=device)
jacobian_branch = block_jacobian(branch, x)
jacobian_sum = block_jacobian(lambda batch: batch + branch(batch), x)
identity = torch.eye(64, device=device)
gap = (jacobian_sum - jacobian_branch - identity).abs().max().item()
print(f"max |J_(x+F) - J_F - I| = {gap:.1e}")
''', tags=["uses-exercise"])
nb.code('''
assert gap < 1e-5
''', tags=["uses-exercise"])
nb.md(r"""
What the identity buys shows in the singular values, the factors by which a Jacobian stretches or squashes the
gradient along its principal directions. One branch alone (left, "plain") squashes every direction, and most of
them to (numerically) zero: its ReLU passes only the units that are active. Adding $I$ lifts them all to near 1. Chain 15 of
each (right, log scale; 15 different branches): the plain chain's largest singular value collapses, which is exactly
the vanishing gradient, while the residual chain stays of order one.
""")
nb.code('''
def singular_values(jacobian: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(jacobian).cpu()


rc.seed_everything(0)
branches = [make_branch() for _ in range(15)]


def residual_chain(batch: torch.Tensor) -> torch.Tensor:
    for f in branches:
        batch = batch + f(batch)
    return batch


one = {"plain: J_F": singular_values(jacobian_branch), "residual: I + J_F": singular_values(jacobian_sum)}
deep = {"plain: 15 branches": singular_values(block_jacobian(nn.Sequential(*branches), x)),
        "residual: 15 blocks": singular_values(block_jacobian(residual_chain, x))}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, values, title in [(axes[0], one, "one block"), (axes[1], deep, "15 blocks chained")]:
    for label, sv in values.items():
        ax.plot(sv, marker=".", label=label)
    ax.set_xlabel("index (largest first)")
    ax.set_ylabel("singular value")
    ax.set_title(title)
    ax.legend()
axes[1].set_yscale("log")
plt.show()
for name, sv in {**one, **deep}.items():
    print(f"{name:>22}: largest {sv.max():.2e}, smallest {sv.min():.2e}, {int((sv < 1e-6).sum())} of 64 below 1e-6")
''', tags=["uses-exercise"])
nb.code('''
assert one["plain: J_F"].max() < 1
assert one["residual: I + J_F"].min() > 0.5
assert deep["plain: 15 branches"].max() < 1e-6
assert deep["residual: 15 blocks"].min() > 0.05
assert deep["residual: 15 blocks"].max() < 10
''', tags=["uses-exercise"])
nb.md(r"""
Finally your own block, with every parameter at zero ($F = 0$). Its Jacobian is then the identity on every unit
whose input is positive, and zero elsewhere: $J = D$, the final ReLU's 0/1 diagonal. Whatever gradient reaches an
active unit's output passes to its input unchanged.
""")
nb.code('''
rc.seed_everything(0)
zero_block = ResidualMLPBlock(64).to(device).eval()
with torch.no_grad():
    for parameter in zero_block.parameters():
        parameter.zero_()
jacobian_zero = block_jacobian(zero_block, x)
relu_mask = torch.diag((x > 0).float())
print(f"active units: {int((x > 0).sum())} of 64; max |J - D| = {(jacobian_zero - relu_mask).abs().max().item():.1e}")
assert torch.equal(jacobian_zero, relu_mask)
''', tags=["uses-exercise"])
nb.md("""
## 5. The claim: the deep residual MLP trains where the plain one degrades

Now the real test, on Fashion-MNIST. Two 32-layer networks of width 64, Kaiming initialisation and BatchNorm, the
same parameter count:

- **plain**: `models.make_mlp(32, 64, "relu", "kaiming", "batch")`, 32 Linear-BN-ReLU layers (the last is just Linear);
- **residual**: the same first layer, then 15 of *your* `ResidualMLPBlock(64)` (30 Linear layers), then the same last
  layer. The only difference: 15 additions.

Both train with the same recipe (Adam, learning rate 1e-3, batch 128). We compare **training** loss: the degradation
problem is about fitting the training set, not about generalising.
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
print(f"{len(data.train):,} training and {len(data.test):,} test images")
''')
nb.code('''
def kaiming_init(model: nn.Module) -> nn.Module:
    """Kaiming-normal weights and zero biases in every Linear layer, as make_mlp(init="kaiming") draws them."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def residual_mlp(depth: int = 32, width: int = 64) -> nn.Module:
    """A first layer, (depth - 2) / 2 residual blocks, a last layer: `depth` Linear layers in all."""
    blocks = [ResidualMLPBlock(width) for _ in range((depth - 2) // 2)]
    first = nn.Sequential(nn.Linear(784, width), nn.BatchNorm1d(width), nn.ReLU())
    return kaiming_init(nn.Sequential(nn.Flatten(), first, *blocks, nn.Linear(width, 10)))


networks = {"plain": lambda: models.make_mlp(32, 64, "relu", "kaiming", "batch"), "residual": residual_mlp}
histories = {}
for name, build in networks.items():
    rc.seed_everything(0)
    model = build()
    histories[name] = fit(model, data, epochs=3, lr=1e-3, progress=False)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{name:>8}: {parameters:,} parameters, training loss per epoch "
          f"{[round(loss, 3) for loss in histories[name].train_loss]} ({histories[name].seconds:.0f} s)")
figure = plots.plot_history(histories, metrics=("train_loss", "train_accuracy"))
figure.suptitle("32-layer MLPs on Fashion-MNIST, same parameters, with and without shortcuts")
figure.tight_layout()
plt.show()
''', tags=["uses-exercise"])
nb.md("""
The plain 32-layer network ends with a much higher training loss than the residual network, which is identical
except for its shortcuts. This is lesson 02's degradation, and the shortcuts remove it. (The margin depends on how
long you train: the short fast-mode run used by graders and CI leaves the plain network close to chance, while full
epochs let it learn, slowly; the assertion below holds in both.)
""")
nb.code('''
final_plain, final_residual = histories["plain"].train_loss[-1], histories["residual"].train_loss[-1]
print(f"final training loss: plain {final_plain:.3f}, residual {final_residual:.3f}")
assert final_residual < final_plain - 0.3
''', tags=["uses-exercise"])
nb.md("""
## 6. Explore: the skip toggle

The gradient explorer of lesson 01 builds a plain MLP and, with **compare with skip connections** ticked, the same
MLP with residual units (the simplest kind, $h + \\mathrm{ReLU}(\\mathrm{BN}(Wh))$, one layer per unit). It runs one
backward pass on a batch and draws each layer's gradient norm. Untick the box to see the plain network alone.

Things to try: ReLU, Kaiming and BatchNorm at depth 50, the setting of this lesson, with and without skips; then
sigmoid without normalisation at depth 50.
""")
nb.code('''
images, labels = data.train.images[:256], data.train.labels[:256]
explorer = GradientExplorer(images, labels)
explorer
''')
nb.md("""
The setting worth remembering, measured: at depth 50 with ReLU, Kaiming and BatchNorm, the plain network's first
layer gets a gradient **thousands of times larger** than its last layer (BatchNorm keeps it from vanishing, but it
now grows toward the input, as lesson 04 found for convolutional stacks), while the residual network's layers stay
within about an order of magnitude of each other.
""")
nb.code('''
def first_to_last(skip: bool) -> float:
    """First/last gradient-norm ratio of a 50-layer ReLU MLP with Kaiming init and BatchNorm."""
    rc.seed_everything(0)
    model = models.make_mlp(50, 64, "relu", "kaiming", "batch", skip=skip).to(device)
    return gradients.first_to_last_ratio(gradients.gradient_profile(model, images, labels))


ratios = {"plain": first_to_last(skip=False), "residual": first_to_last(skip=True)}
print({name: f"{ratio:.1e}" for name, ratio in ratios.items()})
assert ratios["plain"] > 1e3
assert 0.05 < ratios["residual"] < 20
''')
nb.md(r"""
## Summary

- A residual block computes $F(x) + x$; its layers learn the residual $F(x) = H(x) - x$, the difference between the
  desired mapping and the block's **input** (not "actual minus expected output").
- With $F = 0$ the block is the identity (then ReLU): a stack of 10 residual blocks learned to copy its input where
  the plain stack did not.
- $\partial(x + F(x))/\partial x = I + \partial F/\partial x$: the shortcut adds an identity to every Jacobian, so a
  chain of 15 residual blocks keeps its singular values of order one while the plain chain's collapse.
- At 32 layers, with Kaiming init and BatchNorm, the residual MLP reaches a much lower **training** loss than the
  plain one: the shortcuts fix the degradation problem of lesson 02.
- He et al.'s own motivation was degradation; with BatchNorm, the plain network's gradients do not vanish here.

## Going further

- He, Zhang, Ren & Sun (2015), *Deep Residual Learning for Image Recognition*, section 3.1 (the residual-learning
  argument) and Fig. 1 and 6.
- Veit, Wilber & Belongie (2016), *Residual Networks Behave Like Ensembles of Relatively Shallow Networks*: expand
  the product $\prod_\ell (I + J_{F_\ell})$ and you get a sum over paths of every length.
- Balduzzi et al. (2017), *The Shattered Gradients Problem: If resnets are the answer, then what is the question?*
- Try: zero the last BatchNorm scale of each block (`weight` of the second `BatchNorm1d`) before training the
  32-layer residual MLP, so every block starts as the identity; compare the first epoch's loss.
- Next: lesson 04 builds the convolutional blocks of real ResNets.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
