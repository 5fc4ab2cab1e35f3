import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "04_residual_blocks"
nb = NB(SLUG)

nb.md(f"""
# Lesson 04 · Convolutional residual blocks

{badge(SLUG)}

Lesson 03 showed the idea on fully connected layers: a block computes $H(x) = F(x) + x$, so its layers only have to
learn the **residual** $F(x) = H(x) - x$, the difference between the mapping we want and the block's input (not, as
is sometimes said, "the actual output minus the expected output"). Here we build the three convolutional blocks that
ResNets are made of, exactly as in the papers and in torchvision.

**By the end of this lesson you can**

1. write the original ResNet `BasicBlock`, with a projection shortcut exactly when the shape changes;
2. count a block's parameters with a formula, and match torchvision's blocks;
3. explain why zero-initialising the last BatchNorm scale turns a block into the identity (then ReLU);
4. write the `Bottleneck` block used by ResNet-50 and deeper, and the pre-activation block of ResNet v2.

Each exercise has check cells: PASS, or FAIL with what is wrong. Graders test what your block *does*, so any correct
style (torchvision's, a textbook's, your own) passes.
""")
nb.code(setup_cell())
nb.code('''
import torch
from torch import nn
from torchvision.models import resnet as tv

import residual_course as rc
from residual_course.checks import check_basic_block, check_bottleneck, check_preact_block
from residual_course.checks.blocks import basic_block_params, bottleneck_params
from residual_course.probes import zero_init_last_norm

device = rc.get_device()
print(f"device: {device}")
''')
nb.md(r"""
## 1. The basic block

The block of ResNet-18 and ResNet-34 (He et al. 2015, Fig. 2), "post-activation" because the last ReLU comes after
the addition:

```
x ──► conv3x3(stride) ─► BN ─► ReLU ─► conv3x3 ─► BN ──► (+) ─► ReLU ─► out
 │                                                        ▲
 └──────────────── shortcut(x) ───────────────────────────┘
```

- Both convolutions are 3x3 with `padding=1` and **no bias** (the BatchNorm right after has its own shift).
- The first conv takes the block's `stride`; a stride of 2 halves the height and width.
- The **shortcut** is the identity when the output has the input's shape. When the stride is not 1 or the channel
  count changes, `x` cannot be added as it is: the shortcut becomes a **projection**, a 1x1 conv with the same stride
  (no bias) followed by BatchNorm.

### Exercise 1: `BasicBlock(in_channels, out_channels, stride=1)`
""")
nb.solution("basic-block", '''
class BasicBlock(nn.Module):
    """Original ResNet block: conv3x3-BN-ReLU-conv3x3-BN, plus a shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))
        ### END SOLUTION
''')
nb.md("""
The checks below run your block on the GPU when there is one. The first one builds it with an identity shortcut and
counts its parameters; the second zeroes all its weights, so that a correct block returns `relu(x)` exactly.
""")
nb.test("basic-block-identity", 2, '''
check_basic_block(BasicBlock, only=["identity", "device"])
### BEGIN HIDDEN TESTS
check_basic_block(BasicBlock, only=["identity", "device"], channels=24)
### END HIDDEN TESTS
''')
nb.test("basic-block-relu-after-add", 2, '''
check_basic_block(BasicBlock, only="relu after add")
### BEGIN HIDDEN TESTS
check_basic_block(BasicBlock, only="relu after add", channels=8)
_block = BasicBlock(8, 8).to(device)
assert (_block(torch.randn(2, 8, 6, 6, device=device)) >= 0).all(), "the block's output must pass through a final ReLU"
### END HIDDEN TESTS
''')
nb.test("basic-block-projection", 3, '''
check_basic_block(BasicBlock, only="projection")
### BEGIN HIDDEN TESTS
check_basic_block(BasicBlock, only="projection", channels=24)
_block = BasicBlock(8, 24, stride=2).to(device)
assert _block(torch.randn(2, 8, 7, 7, device=device)).shape == (2, 24, 4, 4), "odd sizes: ceil(7 / 2) = 4"
assert sum(p.numel() for p in _block.parameters()) == basic_block_params(8, 24, 2)
### END HIDDEN TESTS
''')
nb.test("basic-block-batchnorm", 1, '''
check_basic_block(BasicBlock, only="batchnorm")
### BEGIN HIDDEN TESTS
check_basic_block(BasicBlock, only="batchnorm", channels=8)
### END HIDDEN TESTS
''')
nb.md(r"""
## 2. Counting parameters

A bias-free $k \times k$ convolution from $C_{in}$ to $C_{out}$ channels has $k^2 C_{in} C_{out}$ weights; a BatchNorm
over $C$ channels learns $2C$ numbers (scale $\gamma$ and shift $\beta$). So a basic block has

$$9\,C_{in}C_{out} + 9\,C_{out}^2 + 4\,C_{out} \quad\text{plus}\quad C_{in}C_{out} + 2\,C_{out}\ \text{for a projection.}$$

Your block, the formula and torchvision's own `BasicBlock` (with the `downsample` its ResNet builds) must agree, for
every block shape that ResNet-18 uses:
""")
nb.code('''
def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torchvision_basic_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    return tv.BasicBlock(in_channels, out_channels, stride, downsample)


resnet18_shapes = [(64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2), (512, 512, 1)]
print(f"{'block':<16}{'yours':>12}{'formula':>12}{'torchvision':>13}")
for shape in resnet18_shapes:
    yours, theirs = count(BasicBlock(*shape)), count(torchvision_basic_block(*shape))
    formula = basic_block_params(*shape)
    print(f"{str(shape):<16}{yours:>12,}{formula:>12,}{theirs:>13,}")
    assert yours == formula == theirs
''', tags=["uses-exercise"])
nb.md("""
Summed over the blocks of ResNet-18 (two per stage), these are 11,166,976 of its 11,689,512 parameters; the stem
(a 7x7 convolution and its BatchNorm, 9,536) and the final classifier (513,000) make up the rest (lesson 05 builds it whole).
""")
nb.code('''
resnet18_blocks = [(64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
                   (128, 256, 2), (256, 256, 1), (256, 512, 2), (512, 512, 1)]
in_blocks = sum(count(BasicBlock(*shape)) for shape in resnet18_blocks)
print(f"parameters in ResNet-18's blocks: {in_blocks:,}")
assert in_blocks == 11_166_976
''', tags=["uses-exercise"])
nb.md("""
## 3. The projection appears exactly when the shape changes

A projection costs parameters and, worse, puts a layer on the path that should carry $x$ unchanged. So it is used only
when it must be. The shortcut's parameter count, per case:
""")
nb.code('''
def branch_only_params(in_channels: int, out_channels: int) -> int:
    return 9 * in_channels * out_channels + 9 * out_channels**2 + 4 * out_channels


x = torch.randn(2, 64, 16, 16, device=device)
for shape in [(64, 64, 1), (64, 128, 1), (64, 64, 2), (64, 128, 2)]:
    block = BasicBlock(*shape).to(device)
    shortcut = count(block) - branch_only_params(*shape[:2])
    print(f"BasicBlock{shape}: output {tuple(block(x).shape)}, shortcut parameters {shortcut:,}")
    assert (shortcut == 0) == (shape[0] == shape[1] and shape[2] == 1)
''', tags=["uses-exercise"])
nb.md(r"""
## 4. Zero-initialise the last BatchNorm scale: the block starts as the identity

If the scale $\gamma$ of the branch's **last** BatchNorm is zero, the branch outputs exactly zero (in evaluation
mode, its output is $\beta = 0$), whatever the weights before it. The block then computes $\mathrm{ReLU}(0 + x)$:
the identity, then ReLU. A deep network built this way starts out as a *shallow* one, and each block learns to depart
from the identity only as far as it helps. torchvision offers it as `resnet18(zero_init_residual=True)`; Goyal et
al. (2017) used it to train ResNet-50 with very large batches.
""")
nb.code('''
block = BasicBlock(64, 64).to(device)
x = torch.randn(8, 64, 16, 16, device=device)
zero_init_last_norm(block, x)     # finds the BatchNorm that runs last, whatever it is called
block.eval()
with torch.no_grad():
    gap = (block(x) - torch.relu(x)).abs().max().item()
print(f"max |block(x) - relu(x)| = {gap:.1e}")
assert gap < 1e-6
''', tags=["uses-exercise"])
nb.md("""
## 5. The bottleneck block

At 256 channels a basic block costs over a million parameters. ResNet-50 and deeper use a **bottleneck**: a 1x1 conv
reduces the channels to `mid_channels`, a 3x3 conv works at that width (and takes the stride, as in torchvision,
"ResNet v1.5"), and a 1x1 conv expands to `4 * mid_channels`. BatchNorm follows every conv; ReLU after the first two
and after the addition. The projection rule is the same: identity unless the stride is not 1 or
`in_channels != 4 * mid_channels`.

```
x ─► conv1x1 ─► BN ─► ReLU ─► conv3x3(stride) ─► BN ─► ReLU ─► conv1x1 (x4) ─► BN ─► (+) ─► ReLU
 └───────────────────────────── shortcut(x) ──────────────────────────────────────────┘
```

### Exercise 2: `Bottleneck(in_channels, mid_channels, stride=1)`
""")
nb.solution("bottleneck", '''
class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 reduce, 3x3 (stride), 1x1 expand to 4x, BN after each, shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        out_channels = mid_channels * self.expansion
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return torch.relu(self.branch(x) + self.shortcut(x))
        ### END SOLUTION
''')
nb.test("bottleneck-identity", 2, '''
check_bottleneck(Bottleneck, only=["identity", "device"])
### BEGIN HIDDEN TESTS
check_bottleneck(Bottleneck, only=["identity", "device"], mid_channels=4)
### END HIDDEN TESTS
''')
nb.test("bottleneck-relu-after-add", 1, '''
check_bottleneck(Bottleneck, only="relu after add")
### BEGIN HIDDEN TESTS
check_bottleneck(Bottleneck, only=["relu after add", "batchnorm"], mid_channels=4)
### END HIDDEN TESTS
''')
nb.test("bottleneck-projection", 2, '''
check_bottleneck(Bottleneck, only="projection")
### BEGIN HIDDEN TESTS
check_bottleneck(Bottleneck, only="projection", mid_channels=4)
### END HIDDEN TESTS
''')
nb.md("""
What the bottleneck buys: at 256 channels in and out, it needs about 17 times fewer parameters than a basic block.
""")
nb.code('''
basic, bottleneck = count(BasicBlock(256, 256)), count(Bottleneck(256, 64))
print(f"BasicBlock(256, 256): {basic:,} parameters;  Bottleneck(256, 64): {bottleneck:,} parameters; "
      f"ratio {basic / bottleneck:.1f}")
assert bottleneck == bottleneck_params(256, 64) == 70_400
assert basic / bottleneck > 15
''', tags=["uses-exercise"])
nb.md("""
## 6. The pre-activation block (ResNet v2)

He et al. (2016, *Identity Mappings in Deep Residual Networks*) moved BatchNorm and ReLU **before** each conv and
removed the ReLU after the addition. Nothing then touches the shortcut path: the output of a stack of blocks is $x$
plus a sum of branch outputs, and the gradient reaches every block through a clean identity.

```
x ─► BN ─► ReLU ─► conv3x3(stride) ─► BN ─► ReLU ─► conv3x3 ──► (+) ─► out      (no ReLU here)
 └─────────────────────── shortcut(x) ───────────────────────────┘
```

When the shape changes the shortcut is again a 1x1 conv with the block's stride (often applied to the pre-activated
input, with or without its own BatchNorm: both are accepted).

### Exercise 3: `PreActBlock(in_channels, out_channels, stride=1)`
""")
nb.solution("preact-block", '''
class PreActBlock(nn.Module):
    """ResNet v2 block: (BN-ReLU-conv3x3) twice, plus a shortcut; nothing after the addition."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.branch(x) + self.shortcut(x)
        ### END SOLUTION
''')
nb.test("preact-identity", 1, '''
check_preact_block(PreActBlock, only=["identity", "device"])
### BEGIN HIDDEN TESTS
check_preact_block(PreActBlock, only=["identity", "device"], channels=24)
### END HIDDEN TESTS
''')
nb.test("preact-no-relu-after-add", 2, '''
check_preact_block(PreActBlock, only="no relu after add")
### BEGIN HIDDEN TESTS
check_preact_block(PreActBlock, only="no relu after add", channels=8)
### END HIDDEN TESTS
''')
nb.test("preact-order", 1, '''
check_preact_block(PreActBlock, only="pre-activation")
### BEGIN HIDDEN TESTS
check_preact_block(PreActBlock, only="pre-activation", channels=8)
### END HIDDEN TESTS
''')
nb.test("preact-projection", 1, '''
check_preact_block(PreActBlock, only="projection")
### BEGIN HIDDEN TESTS
check_preact_block(PreActBlock, only="projection", channels=24)
### END HIDDEN TESTS
''')

nb.md("""
## 7. Gradients through a stack of 30 blocks

Stack 30 blocks of each kind (16 channels, 8x8 feature maps), plus a "plain" stack of the course's `PlainBlock`:
the same two conv-BN-ReLU layers without the shortcut. Feed a batch, send a random gradient back from the output, and compare the
weight-gradient norm of the first convolution with that of the last (`gradients.layer_grad_norms` works on any model).
With BatchNorm nothing vanishes here; instead the plain stack's gradient **explodes** toward the input, the
post-activation residual stack stays within about an order of magnitude, and the pre-activation stack, whose
shortcut path is a clean identity, is the most even.
""")
nb.code('''
from residual_course import gradients
from residual_course.convnets import PlainBlock  # BasicBlock without its shortcut: conv-BN-ReLU twice


def first_to_last(block_type: type[nn.Module], depth: int = 30) -> float:
    rc.seed_everything(0)
    stack = nn.Sequential(*[block_type(16, 16) for _ in range(depth)]).to(device)
    out = stack(torch.randn(16, 16, 8, 8, device=device))
    out.backward(torch.randn_like(out))
    norms = gradients.layer_grad_norms(stack)
    return norms[0] / norms[-1]


stack_ratios = {block_type.__name__: first_to_last(block_type) for block_type in (PlainBlock, BasicBlock, PreActBlock)}
for name, ratio in stack_ratios.items():
    print(f"{name:>12}: first/last conv gradient-norm ratio {ratio:.1e}")
''', tags=["uses-exercise"])
nb.code('''
assert stack_ratios["PlainBlock"] > 1e3
assert stack_ratios["BasicBlock"] < 100
assert stack_ratios["PreActBlock"] < stack_ratios["BasicBlock"]
''', tags=["uses-exercise"])
nb.md("""
## Summary

- A residual block adds its input back: $H(x) = F(x) + x$; its layers learn the residual $F(x) = H(x) - x$.
- **BasicBlock**: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. **Bottleneck**: 1x1-3x3-1x1
  (x4) with BN after each, 17 times cheaper at 256 channels. **PreActBlock**: (BN-ReLU-conv) twice, nothing after the
  addition.
- The shortcut is the identity unless the stride or the channel count changes; then a 1x1 conv (+ BN) projects.
- Parameter counts follow from the shapes: $k^2 C_{in} C_{out}$ per bias-free conv, $2C$ per BatchNorm. Yours match
  torchvision's.
- Zeroing the last BatchNorm scale makes a block the identity (then ReLU) at initialisation.

## Going further

- He, Zhang, Ren & Sun (2015), *Deep Residual Learning for Image Recognition*, Fig. 2 and 5; (2016), *Identity
  Mappings in Deep Residual Networks*, Fig. 1 and 4.
- Read torchvision's `models/resnet.py`: find where it zero-initialises the last BN, and where "v1.5" puts the stride.
- A typo you will find in code online (the article this course started from has it):
  `super(ResidualBlock, self).__init()`, with the trailing underscores missing. Inside a class, Python mangles
  `__init` to `_ResidualBlock__init`, so building the block fails with
  "AttributeError: 'super' object has no attribute '_ResidualBlock__init'". Write `super().__init__()`.
- Next: lesson 05 stacks your blocks into stages and builds a whole ResNet.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
