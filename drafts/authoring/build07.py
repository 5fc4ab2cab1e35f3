import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "07_capstone"
nb = NB(SLUG)

nb.md(f"""
# Lesson 07 · Capstone: design your own residual network

{badge(SLUG)}

Six lessons in, you know why deep plain networks are hard to train, what a residual block learns, how ResNets are
assembled, and what their parameters cost. Now you design one yourself: a residual network for Fashion-MNIST that
fits a **parameter budget**, is trained with a fixed recipe, and is scored on images that neither you nor this
notebook ever evaluates on.

**By the end of this lesson you can**

1. plan a network against a parameter budget, block by block;
2. build it with at least one identity shortcut, and check its interface;
3. train it and read its learning curves on a validation split carved from the training set;
4. recognise the same residual pattern, $x + f(\\mathrm{{norm}}(x))$, inside a Transformer block.
""")
nb.code(setup_cell())
nb.code('''
import matplotlib.pyplot as plt
import torch
from torch import nn

import residual_course as rc
from residual_course import gradients, plots
from residual_course.checks.blocks import basic_block_params
from residual_course.checks.capstone import GRADING_RECIPE, check_capstone, count_trainable, grading_accuracy
from residual_course.convnets import count_macs
from residual_course.data import DataSet, Split, load_dataset
from residual_course.training import fit

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')
nb.md("""
## 1. The brief

Write a class `MyResNet(nn.Module)`:

- a **no-argument constructor**, `MyResNet()`;
- input: a batch of Fashion-MNIST images, shape `(N, 1, 28, 28)`; output: **logits**, shape `(N, 10)` (no softmax:
  the cross-entropy loss applies log-softmax itself);
- at most **100,000 trainable parameters** (the constant below);
- at least one **identity shortcut**: somewhere the network computes `x + F(x)` with the block's input `x`, unchanged,
  added to the output of a branch `F` of layers. (A projection shortcut, `conv1x1(x) + F(x)`, is fine where shapes
  change, but it does not count on its own.)

**How it is graded.** The visible checks below test the interface. Then the grader builds a **fresh** `MyResNet()`,
seeds it, trains it with a fixed recipe that you cannot change (`GRADING_RECIPE`: Adam, learning rate 1e-3, batch
128, three epochs; when autograding it shrinks to two epochs of 30 steps) and measures its accuracy on **held-out
images** that this notebook never evaluates on. Points come in three accuracy bands: at least 0.50, 0.60 and 0.70
under the autograder's short budget. Your own training choices in this notebook do not affect the grade: the
*architecture* does.
""")
nb.code('''
PARAMETER_BUDGET = 100_000
print(GRADING_RECIPE)
''')
nb.md("""
## 2. Data, and a validation split

You will compare designs, so you need a yardstick that is not the held-out test set: a **validation split** carved
from the training set. One image in six goes to validation; the rest is for training. `fit` reports accuracy on the
data set's `test` split after every epoch, so we build a data set whose `test` split *is* the validation split.
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0)).to(device)
validation_size = len(data.train) // 6
held_in, validation = order[validation_size:], order[:validation_size]
development = DataSet(
    name=data.name,
    train=Split(data.train.images[held_in], data.train.labels[held_in]),
    test=Split(data.train.images[validation], data.train.labels[validation]),  # validation, not the test set
    class_names=data.class_names,
)
print(f"training: {len(development.train):,} images, validation: {len(development.test):,} images")
''')
nb.md(r"""
## 3. Spend the budget wisely

Every parameter count follows from the shapes (lesson 04): a bias-free $k \times k$ convolution from $C_{in}$ to
$C_{out}$ channels costs $k^2 C_{in} C_{out}$, a BatchNorm $2C$. Here is what a basic block costs at a few widths (a
projection is included where the shape changes):
""")
nb.code('''
for shape in [(16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1)]:
    cost = basic_block_params(*shape)
    print(f"BasicBlock{shape}: {cost:>7,} parameters ({cost / PARAMETER_BUDGET:.0%} of the budget)")
''')
nb.md("""
Width is expensive: the cost grows with the *square* of the channel count, so one block at 64 channels costs about
as much as sixteen at 16. Two more things to know:

- The classifier: global average pooling before `nn.Linear(C, 10)` costs $10C + 10$ parameters; flattening a
  $C \\times 7 \\times 7$ map instead costs 49 times as many weights.
- Compute is a separate budget: a convolution at full 28x28 resolution costs 16 times the multiply-adds of the same
  convolution at 7x7. A strided first layer (or an early stride-2 block) keeps training fast.
""")
nb.code('''
print(f"64 channels, pooled: {10 * 64 + 10:,} parameters; flattened 64x7x7: {10 * 64 * 49 + 10:,} parameters")
assert basic_block_params(64, 64, 1) == 73_984
''')
nb.md("""
### Exercise: `MyResNet()`

Design it. A sound starting point is the layout of lesson 05, scaled down: a stem (a 3x3 convolution with BatchNorm
and ReLU), a few stages of residual blocks that double the channels while halving the resolution, global average
pooling and a linear classifier. You may define helper classes (a block, a stage) in this cell, above `MyResNet`.
""")
nb.solution("my-resnet", '''
class MyResNet(nn.Module):
    """A residual network for Fashion-MNIST: (N, 1, 28, 28) images -> (N, 10) logits, under PARAMETER_BUDGET."""

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        widths = (16, 32, 64)
        self.stem = nn.Sequential(  # stride 2: the blocks work at 14x14, 7x7 and 4x4
            nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.branches, self.shortcuts = nn.ModuleList(), nn.ModuleList()
        channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            self.branches.append(nn.Sequential(
                nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
            ))
            identity = stride == 1 and channels == width
            self.shortcuts.append(nn.Identity() if identity else nn.Sequential(
                nn.Conv2d(channels, width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width),
            ))
            channels = width
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        x = self.stem(x)
        for branch, shortcut in zip(self.branches, self.shortcuts, strict=True):
            x = torch.relu(branch(x) + shortcut(x))
        return self.head(x)
        ### END SOLUTION
''')
nb.md("""
The checks run on the GPU when there is one. The shortcut check follows the forward pass's own computation graph
and looks for an addition $x + F(x)$ whose branch $F$ uses your layers' parameters and starts from that same $x$.
""")
nb.test("capstone-output", 2, '''
check_capstone(MyResNet, only=["output", "device"], budget=PARAMETER_BUDGET)
### BEGIN HIDDEN TESTS
_model = MyResNet().to(device).eval()
with torch.no_grad():
    assert _model(torch.randn(1, 1, 28, 28, device=device)).shape == (1, 10), "one image in, one row of logits out"
### END HIDDEN TESTS
''')
nb.test("capstone-logits", 1, '''
check_capstone(MyResNet, only="logits", budget=PARAMETER_BUDGET)
### BEGIN HIDDEN TESTS
_model = MyResNet().to(device).eval()
with torch.no_grad():
    _scores = _model(torch.randn(16, 1, 28, 28, device=device))
assert not ((_scores >= 0).all() and torch.allclose(_scores.sum(1), torch.ones(16, device=device), atol=1e-4))
### END HIDDEN TESTS
''')
nb.test("capstone-budget", 2, '''
check_capstone(MyResNet, only="budget", budget=PARAMETER_BUDGET)
### BEGIN HIDDEN TESTS
check_capstone(MyResNet, only="budget", budget=100_000)
assert count_trainable(MyResNet()) <= 100_000
### END HIDDEN TESTS
''')
nb.test("capstone-shortcut", 2, '''
check_capstone(MyResNet, only="shortcut", budget=PARAMETER_BUDGET)
### BEGIN HIDDEN TESTS
check_capstone(MyResNet, only="shortcut", budget=100_000)
### END HIDDEN TESTS
''')
nb.code('''
my_model = MyResNet()
print(f"MyResNet: {count_trainable(my_model):,} parameters ({count_trainable(my_model) / PARAMETER_BUDGET:.0%} of "
      f"the budget), {count_macs(my_model):,} multiply-adds per image")
''', tags=["uses-exercise"])
nb.md("""
## 4. Train it and read the curves

Train a fresh, seeded `MyResNet()` exactly as the grader will (`GRADING_RECIPE`), but on the development data: the
held-in part for training, the validation split for the accuracy. (In this notebook, "test accuracy" in `fit`'s
history is the validation accuracy.)
""")
nb.code('''
rc.seed_everything(0)
my_model = MyResNet()
history = fit(my_model, development, **GRADING_RECIPE, progress=False)
print(f"validation accuracy per epoch: {[round(a, 3) for a in history.test_accuracy]} ({history.seconds:.0f} s)")
figure = plots.plot_history({"MyResNet": history}, metrics=("train_loss", "test_accuracy"))
figure.axes[1].set_ylabel("validation accuracy")
figure.suptitle("MyResNet trained with the grading recipe")
figure.tight_layout()
plt.show()
''', tags=["uses-exercise"])
nb.md("""
The solution's design, three one-block stages of 16, 32 and 64 channels behind a strided stem (77,754 parameters),
clears 0.65 on the validation split even in the short fast-mode run.
""")
nb.code('''
assert history.test_accuracy[-1] > 0.65
''', tags=["uses-exercise"])
nb.md("""
Ideas to improve your design, to compare on the validation split: more blocks at low resolution (cheap in
parameters and compute), a different split of the budget between stages, zero-initialising the last BatchNorm scale
of each branch (lesson 04), or wider early stages with fewer late ones. Change one thing at a time.

## 5. Graded: accuracy on held-out images

The three cells below are the grader's: each awards its points if a fresh `MyResNet()`, trained with
`GRADING_RECIPE` on the training set, reaches the band's accuracy on the held-out images.
""")
nb.test("capstone-accuracy-50", 2, '''
print(f"{count_trainable(MyResNet()):,} parameters; this band needs a held-out accuracy of at least 0.50")
### BEGIN HIDDEN TESTS
_heldout_accuracy = None
_heldout_accuracy = grading_accuracy(MyResNet, load_dataset("fashion-mnist", device=device))
print(f"held-out accuracy: {_heldout_accuracy:.3f}")
assert _heldout_accuracy >= 0.50
### END HIDDEN TESTS
''')
nb.test("capstone-accuracy-60", 2, '''
print(f"{count_trainable(MyResNet()):,} parameters; this band needs a held-out accuracy of at least 0.60")
### BEGIN HIDDEN TESTS
assert _heldout_accuracy is not None and _heldout_accuracy >= 0.60
### END HIDDEN TESTS
''')
nb.test("capstone-accuracy-70", 2, '''
print(f"{count_trainable(MyResNet()):,} parameters; this band needs a held-out accuracy of at least 0.70")
### BEGIN HIDDEN TESTS
assert _heldout_accuracy is not None and _heldout_accuracy >= 0.70
### END HIDDEN TESTS
''')
nb.md(r"""
## Summary

- A design starts from the budget: parameters grow with the square of the width, compute with the resolution.
- A residual network is stem, stages of blocks with identity shortcuts (projections only where the shape changes),
  global average pooling and a linear classifier that returns logits.
- Compare designs on a validation split carved from the training set; keep the test set for the final verdict.

## Going further: the same pattern in a Transformer

A pre-norm Transformer block (as in GPT-2 and most large language models since) is two residual blocks in a row:

$$x \leftarrow x + \mathrm{Attention}(\mathrm{LayerNorm}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LayerNorm}_2(x)).$$

It is the pre-activation pattern of lesson 04, $x + f(\mathrm{norm}(x))$: nothing but additions on the path that
carries $x$. Here is a tiny one built from `torch.nn` pieces, stacked 24 deep, with and without the two additions.
""")
nb.code('''
class PreNormBlock(nn.Module):
    """x + attention(norm1(x)), then x + mlp(norm2(x)); with residual=False the additions are left out."""

    def __init__(self, dim: int = 32, heads: int = 4, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attended = self.attention(h, h, h, need_weights=False)[0]
        x = x + attended if self.residual else attended
        updated = self.mlp(self.norm2(x))
        return x + updated if self.residual else updated


def token_spread(tokens: torch.Tensor) -> float:
    """How different the tokens of each sequence are: distance from their mean token, relative to their size."""
    return ((tokens - tokens.mean(dim=1, keepdim=True)).norm() / tokens.norm()).item()


spread, grad_ratio = {}, {}
for name, residual in [("residual", True), ("no additions", False)]:
    rc.seed_everything(0)
    stack = nn.Sequential(*[PreNormBlock(residual=residual) for _ in range(24)]).to(device)
    tokens = torch.randn(8, 16, 32, device=device)  # 8 sequences of 16 tokens, 32 features each
    out = stack(tokens)
    out.backward(torch.randn_like(out))
    norms = gradients.layer_grad_norms(stack)
    spread[name], grad_ratio[name] = token_spread(out), norms[0] / norms[-1]
    print(f"{name:>12}: token spread in {token_spread(tokens):.2f}, out {spread[name]:.1e}; "
          f"first/last weight-gradient ratio {grad_ratio[name]:.2f}")
''')
nb.md("""
Two measurements, and the second is the surprise. Without the additions the gradient norms are *not* the problem:
every block normalises its input, so the first block's weights get about as much gradient as the last one's. What
collapses is the signal: after 24 blocks every token of a sequence is the same vector (their spread is at the level
of float32 rounding), so whatever the first layers learn cannot reach the output as anything but one repeated token.
With the additions each block only adds to $x$, and the tokens stay distinct. Dong, Cordonnier & Loukas (2021) proved
that attention without skip connections loses rank doubly exponentially with depth; the skip connections are what
prevents it.
""")
nb.code('''
assert spread["residual"] > 0.3
assert spread["no additions"] < 1e-3
assert all(0.1 < ratio < 10 for ratio in grad_ratio.values())
''')
nb.md("""
- He, Zhang, Ren & Sun (2016), *Identity Mappings in Deep Residual Networks* (the pre-activation block).
- Vaswani et al. (2017), *Attention Is All You Need*; Xiong et al. (2020), *On Layer Normalization in the Transformer
  Architecture* (why pre-norm trains without a warm-up).
- Dong, Cordonnier & Loukas (2021), *Attention is Not All You Need: Pure Attention Loses Rank Doubly Exponentially
  with Depth*.
- Train your `MyResNet` for longer (say ten epochs on the full training set, on a GPU) and evaluate it once on
  `data.test`: how far is it from the accuracy under the grader's short budget?
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
