import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "06_resnext_densenet"
nb = NB(SLUG)

nb.md(f"""
# Lesson 06 · ResNeXt and DenseNet: two ways to go beyond the ResNet block

{badge(SLUG)}

Two famous descendants of ResNet change what happens inside or between blocks:

- **ResNeXt** (Xie, Girshick, Dollár, Tu & He 2017, *Aggregated Residual Transformations for Deep Neural Networks*)
  keeps the residual addition, but splits the block's 3x3 convolution into many small, independent paths. The
  number of paths is a new dimension of the network, the **cardinality**.
- **DenseNet** (Huang, Liu, van der Maaten & Weinberger 2017, *Densely Connected Convolutional Networks*) drops the
  addition altogether: each layer **concatenates** its new feature maps to everything that came before it.

A correction first. The article this course started from calls DenseNet "another model that uses residual
connections". It is not a residual network: nothing in it computes $x + F(x)$. A dense layer returns
$[x, F(x)]$, its input *and* its new features side by side, so the number of channels grows. This lesson shows the
difference with numbers.

**By the end of this lesson you can**

1. show that a grouped convolution is exactly a set of independent convolutions on channel slices, and count its
   parameters;
2. write a `ResNeXtBlock` in which the cardinality is the number of groups of the 3x3 convolution (not the number of
   channels per group, a widely copied mix-up);
3. write DenseNet's `DenseLayer`, `DenseBlock` and `Transition`, and see the channels grow by the growth rate per layer;
4. compare a ResNet, a ResNeXt and a DenseNet of similar size: parameters, compute, and accuracy on Fashion-MNIST.

Each exercise has check cells: PASS, or FAIL with what is wrong. They test what your code *does*, so any correct
style passes.
""")
nb.code(setup_cell())
nb.code('''
import matplotlib.pyplot as plt
import torch
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv

import residual_course as rc
from residual_course import convnets, plots
from residual_course.checks.families import (
    check_dense_block,
    check_dense_layer,
    check_resnext_block,
    check_transition,
    dense_block_params,
    dense_layer_params,
    resnext_block_params,
    transition_params,
)
from residual_course.checks.report import exact_float32
from residual_course.data import load_dataset
from residual_course.probes import trace_forward
from residual_course.training import fit

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")


def count(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
''')

# ------------------------------------------------------------------ 1. grouped convolution
nb.md(r"""
## 1. A grouped convolution is many small convolutions side by side

An ordinary convolution connects every input channel to every output channel. With `groups=G`, PyTorch splits the
$C_{in}$ input channels into $G$ consecutive slices and the $C_{out}$ output channels likewise; slice $g$ of the
output is computed from slice $g$ of the input only. A $k \times k$ grouped convolution therefore has

$$k^2 \cdot \frac{C_{in}}{G} \cdot C_{out} \;=\; \frac{k^2\, C_{in}\, C_{out}}{G} \quad\text{weights,}$$

$G$ times fewer than the ordinary one. Let us check that claim, and the stronger one behind ResNeXt: a grouped
convolution computes **exactly** what $G$ separate small convolutions compute on the channel slices, their outputs
concatenated. We copy the grouped conv's weights into 4 separate convs and compare. (On a GPU, `exact_float32`
switches off TF32, which would otherwise round the products.)
""")
nb.code('''
groups, group_width = 4, 8
channels = groups * group_width
grouped = nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False).to(device)
separate = [nn.Conv2d(group_width, group_width, 3, padding=1, bias=False).to(device) for _ in range(groups)]
with torch.no_grad():
    for g, conv in enumerate(separate):
        conv.weight.copy_(grouped.weight[g * group_width:(g + 1) * group_width])  # weight: (out, in / groups, 3, 3)

x = torch.randn(8, channels, 14, 14, device=device)
with torch.no_grad(), exact_float32():
    together = grouped(x)
    apart = torch.cat([conv(x[:, g * group_width:(g + 1) * group_width]) for g, conv in enumerate(separate)], dim=1)
difference = (together - apart).abs().max().item()
print(f"grouped conv vs {groups} separate convs on channel slices: max |difference| = {difference:.1e}")
print(f"weights: grouped {count(grouped):,} = 9 * {channels} * {channels} / {groups} = "
      f"{9 * channels * channels // groups:,};  ordinary conv {9 * channels * channels:,}")
''')
nb.code('''
assert difference < 1e-5
assert count(grouped) == 9 * channels * channels // groups
assert sum(count(conv) for conv in separate) == count(grouped)
''')
nb.md("""
The groups are independent: change the input channels of group 0 and only group 0's outputs move.
""")
nb.code('''
nudged = x.clone()
nudged[:, :group_width] += 1.0
with torch.no_grad(), exact_float32():
    change = (grouped(nudged) - together).abs().amax(dim=(0, 2, 3))  # per output channel
per_group = change.view(groups, group_width).amax(dim=1)
for g, value in enumerate(per_group.tolist()):
    print(f"group {g}: largest change of its outputs {value:.3f}")
assert per_group[0] > 0.1 and (per_group[1:] == 0).all()
''')

# ------------------------------------------------------------------ 2. ResNeXt
nb.md(r"""
## 2. The ResNeXt block

Xie et al. (2017) describe their block in three equivalent forms (their Fig. 3). In form (a), the block's input goes
through $C$ parallel paths, each a 1x1 conv down to $d$ channels, a 3x3 conv, and a 1x1 conv back up; the paths are
summed and the shortcut added. Form (c) computes the same thing with one **grouped** 3x3 conv:

```
x ─► conv1x1 (C·d) ─► BN ─► ReLU ─► conv3x3 (C·d, groups=C, stride) ─► BN ─► ReLU ─► conv1x1 (out) ─► BN ─► (+) ─► ReLU
 └─────────────────────────────────── shortcut(x) ─────────────────────────────────────────────────────┘
```

- $C$ is the **cardinality**: the number of paths, i.e. the number of **groups** of the 3x3 conv.
- $d$ is the **bottleneck width**: the channels of one path, i.e. the channels **per group**. The block's inner
  width is $C \cdot d$.
- ResNeXt-50 "32x4d" has $C = 32$ and $d = 4$ in its first stage: 256 channels in, $32 \cdot 4 = 128$ grouped
  channels inside, 256 out.
- Convs have no bias; the shortcut is the identity, or a 1x1 conv (with the block's stride) + BatchNorm when the stride
  is not 1 or the channel count changes, exactly as in lesson 04. The stride sits in the 3x3 conv.

A mix-up you will find in code online is `groups = channels // cardinality`: it makes the *width of a group* equal to
the cardinality, and the number of groups equal to $d$. For 32x4d that means 4 groups of 32 channels instead of 32
groups of 4, a different network with 8 times more weights in its 3x3 conv:
""")
nb.code('''
width, cardinality = 128, 32
print(f"right, groups = cardinality = {cardinality}: {9 * width * width // cardinality:,} weights in the 3x3 conv")
print(f"mix-up, groups = channels // cardinality = {width // cardinality}: "
      f"{9 * width * width // (width // cardinality):,} weights")
assert 9 * width * width // (width // cardinality) == 8 * (9 * width * width // cardinality)
''')
nb.md("""
### Exercise 1: `ResNeXtBlock(in_channels, out_channels, cardinality, bottleneck_width, stride=1)`
""")
nb.solution("resnext-block", '''
class ResNeXtBlock(nn.Module):
    """ResNeXt block (Xie et al. 2017, Fig. 3c): 1x1, grouped 3x3 (groups = cardinality), 1x1, plus a shortcut."""

    def __init__(self, in_channels: int, out_channels: int, cardinality: int, bottleneck_width: int,
                 stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        width = cardinality * bottleneck_width
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1, bias=False),
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
nb.md("""
The checks build your block with 32 channels, cardinality 8 and bottleneck width 2 (16 grouped channels), and run it
on the GPU when there is one.
""")
nb.test("resnext-shape", 1, '''
check_resnext_block(ResNeXtBlock, only=["shape", "device"])
### BEGIN HIDDEN TESTS
check_resnext_block(ResNeXtBlock, only=["shape", "device"], cardinality=4, bottleneck_width=4, channels=24)
### END HIDDEN TESTS
''')
nb.md(r"""
Parameters, from the diagram: $C_{in} \cdot Cd$ for the first 1x1 conv, $9 (Cd)^2 / C$ for the grouped 3x3 conv,
$Cd \cdot C_{out}$ for the last 1x1 conv, $2\times$ the channels of each BatchNorm, and $C_{in} C_{out} + 2 C_{out}$
for a projection. The next check compares your count with this formula; the one after looks at the 3x3 conv your
block actually runs and reads its `groups`.
""")
nb.test("resnext-parameters", 2, '''
check_resnext_block(ResNeXtBlock, only="parameters")
### BEGIN HIDDEN TESTS
check_resnext_block(ResNeXtBlock, only="parameters", cardinality=4, bottleneck_width=8, channels=16)
check_resnext_block(ResNeXtBlock, only="parameters", cardinality=32, bottleneck_width=4, channels=64)
### END HIDDEN TESTS
''')
nb.test("resnext-groups", 2, '''
check_resnext_block(ResNeXtBlock, only="groups")
### BEGIN HIDDEN TESTS
check_resnext_block(ResNeXtBlock, only="groups", cardinality=4, bottleneck_width=8, channels=16)
check_resnext_block(ResNeXtBlock, only="groups", cardinality=32, bottleneck_width=4, channels=64)
### END HIDDEN TESTS
''')
nb.test("resnext-identity", 1, '''
check_resnext_block(ResNeXtBlock, only="relu after add")
### BEGIN HIDDEN TESTS
check_resnext_block(ResNeXtBlock, only="relu after add", cardinality=4, bottleneck_width=4, channels=8)
### END HIDDEN TESTS
''')
nb.test("resnext-projection", 2, '''
check_resnext_block(ResNeXtBlock, only="projection")
### BEGIN HIDDEN TESTS
check_resnext_block(ResNeXtBlock, only="projection", cardinality=4, bottleneck_width=4, channels=24)
_block = ResNeXtBlock(8, 24, 4, 2, stride=2).to(device)
assert _block(torch.randn(2, 8, 7, 7, device=device)).shape == (2, 24, 4, 4), "odd sizes: ceil(7 / 2) = 4"
### END HIDDEN TESTS
''')
nb.md("""
### Your block against torchvision's ResNeXt-50 (32x4d)

torchvision builds `resnext50_32x4d` from its `Bottleneck` class with `groups=32, base_width=4`. Your block, the
formula and torchvision's must agree on the blocks of its first stage: the first one projects 64 channels to 256,
the others keep 256.
""")
nb.code('''
def torchvision_resnext_block(in_channels: int, out_channels: int, cardinality: int, bottleneck_width: int,
                              stride: int = 1) -> nn.Module:
    """torchvision's Bottleneck with groups; its inner width is planes * base_width / 64 * groups."""
    planes = out_channels // tv.Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    return tv.Bottleneck(in_channels, planes, stride, downsample, groups=cardinality,
                         base_width=64 * bottleneck_width // planes)


print(f"{'block':<22}{'yours':>10}{'formula':>10}{'torchvision':>13}")
for shape in [(64, 256, 32, 4), (256, 256, 32, 4)]:
    yours, theirs = count(ResNeXtBlock(*shape)), count(torchvision_resnext_block(*shape))
    formula = resnext_block_params(*shape)
    print(f"{str(shape):<22}{yours:>10,}{formula:>10,}{theirs:>13,}")
    assert yours == formula == theirs
''', tags=["uses-exercise"])
nb.md("""
### Same budget, more paths

Xie et al. compare blocks of (almost) the same cost: as the cardinality grows, the grouped 3x3 conv gets cheaper per
channel, so the block can afford more channels. Their Table 2 keeps a ResNet-50 bottleneck's budget (256 channels in
and out) and trades $C$ against $d$. With your block ($C = 1, d = 64$ is the ordinary ResNet-50 bottleneck of
lesson 04):
""")
nb.code('''
def conv_weights_by_kernel(block: nn.Module) -> dict[int, int]:
    """Weights of the convolutions that run, by kernel size, so 1x1 and 3x3 costs can be told apart."""
    totals = {1: 0, 3: 0}
    for call in trace_forward(block.eval(), torch.zeros(1, 256, 8, 8), (nn.Conv2d,)):
        totals[call.module.kernel_size[0]] += call.module.weight.numel()
    return totals


budget_table = {}
print(f"{'C x d':>8}{'width':>8}{'parameters':>12}{'1x1 weights':>13}{'3x3 weights':>13}")
for cardinality, bottleneck_width in [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]:
    block = ResNeXtBlock(256, 256, cardinality, bottleneck_width)
    budget_table[cardinality, bottleneck_width] = (count(block), conv_weights_by_kernel(block))
    weights = budget_table[cardinality, bottleneck_width][1]
    print(f"{f'{cardinality}x{bottleneck_width}d':>8}{cardinality * bottleneck_width:>8}"
          f"{count(block):>12,}{weights[1]:>13,}{weights[3]:>13,}")
''', tags=["uses-exercise"])
nb.code('''
labels = [f"{c}x{d}d" for c, d in budget_table]
ones = [weights[1] for _, weights in budget_table.values()]
threes = [weights[3] for _, weights in budget_table.values()]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(labels, ones, label="1x1 convs")
ax.bar(labels, threes, bottom=ones, label="grouped 3x3 conv")
ax.set_xlabel("cardinality x bottleneck width (256 channels in and out)")
ax.set_ylabel("conv weights")
ax.set_title("Same budget: more groups buy a wider block")
ax.set_ylim(0, 95_000)
ax.legend(loc="upper center", ncols=2)
plt.show()
''', tags=["uses-exercise"])
nb.md("""
Every row stays within a few percent of the ResNet-50 bottleneck's count, while the inner width doubles from 64 to
128 channels: the grouped 3x3 conv shrinks from about half of the weights to a small fraction. Xie et al. found that,
at equal budget, more cardinality gave lower ImageNet error than more width or depth (their Tables 3 and 4).
""")
nb.code('''
resnet50_bottleneck = budget_table[1, 64][0]
for (cardinality, bottleneck_width), (params, _) in budget_table.items():
    assert abs(params / resnet50_bottleneck - 1) < 0.03, (cardinality, bottleneck_width)
assert resnet50_bottleneck == 70_400
assert budget_table[32, 4][1][3] < budget_table[1, 64][1][3] / 5
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 3. DenseNet
nb.md(r"""
## 3. DenseNet: concatenate, do not add

A residual block **adds**: $x_{\ell+1} = x_\ell + F(x_\ell)$, so the output has as many channels as the input, and
$x_\ell$ and $F(x_\ell)$ are mixed into the same numbers. A dense layer **concatenates**:

$$x_{\ell+1} = [\,x_\ell,\; H(x_\ell)\,] \quad\text{(along the channels)},$$

so $x_\ell$ is passed on **unchanged**, and the layer only adds $k$ new channels, the **growth rate**. Inside a dense
block, layer $\ell$ therefore sees the block's input and the features of *every* earlier layer: $C_0 + \ell k$
channels. That is why DenseNet reuses features with few parameters per layer, and also why it is not a residual
network: no layer ever sums two feature maps.

DenseNet-BC (Huang et al. 2017, "B" for bottleneck, "C" for compression) builds $H$ in pre-activation order with a
1x1 bottleneck of $4k$ channels:

```
x ─┬─► BN ─► ReLU ─► conv1x1 (4k) ─► BN ─► ReLU ─► conv3x3 (k, padding 1) ─► new ─┐
   └──────────────────────────────────────────────────────────────────────────────┴─► cat([x, new], dim=1)
```

Convs have no bias. The input goes **first** in the concatenation, so every feature map keeps its channel position as
the block grows.

### Exercise 2: `DenseLayer(in_channels, growth_rate)`
""")
nb.solution("dense-layer", '''
class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) new features, concatenated after the input."""

    def __init__(self, in_channels: int, growth_rate: int):
        super().__init__()
        ### BEGIN SOLUTION
        bottleneck = 4 * growth_rate
        self.new_features = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, bottleneck, 1, bias=False),
            nn.BatchNorm2d(bottleneck),
            nn.ReLU(inplace=True),
            nn.Conv2d(bottleneck, growth_rate, 3, padding=1, bias=False),
        )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        new_features = self.new_features(x)
        return torch.cat([x, new_features], dim=1)
        ### END SOLUTION
''')
nb.md("""
The first check feeds your layer a batch and asks two things: does the output have `in_channels + growth_rate`
channels, and are its first `in_channels` channels the input itself, bit for bit?
""")
nb.test("dense-layer-concat", 3, '''
check_dense_layer(DenseLayer, only=["concatenation", "device"])
### BEGIN HIDDEN TESTS
check_dense_layer(DenseLayer, only=["concatenation", "device"], in_channels=24, growth_rate=12)
check_dense_layer(DenseLayer, only="concatenation", in_channels=3, growth_rate=5)
### END HIDDEN TESTS
''')
nb.md(r"""
Parameters: BN($C_{in}$) has $2C_{in}$, the 1x1 conv $C_{in} \cdot 4k$, BN($4k$) has $8k$, the 3x3 conv
$9 \cdot 4k \cdot k$.
""")
nb.test("dense-layer-parameters", 2, '''
check_dense_layer(DenseLayer, only="parameters")
### BEGIN HIDDEN TESTS
check_dense_layer(DenseLayer, only="parameters", in_channels=24, growth_rate=12)
assert count(DenseLayer(64, 32)) == dense_layer_params(64, 32) == count(tv_densenet._DenseLayer(64, 32, 4, 0.0))
### END HIDDEN TESTS
''')
nb.md("""
### Exercise 3: `DenseBlock(num_layers, in_channels, growth_rate)`

Stack `num_layers` of your `DenseLayer`s. Layer $i$ (from 0) receives $C_{in} + i k$ channels, and the block returns
$C_{in} + L k$ channels: its input, then the $k$ new channels of each layer in order.
""")
nb.solution("dense-block", '''
class DenseBlock(nn.Module):
    """num_layers DenseLayers in a row: each sees all the features before it; channels grow by growth_rate each."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            *[DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers)]
        )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION
''')
nb.test("dense-block-growth", 2, '''
check_dense_block(DenseBlock, only=["growth", "device"])
### BEGIN HIDDEN TESTS
check_dense_block(DenseBlock, only=["growth", "device"], num_layers=1, in_channels=4, growth_rate=8)
check_dense_block(DenseBlock, only="growth", num_layers=5, in_channels=16, growth_rate=4)
### END HIDDEN TESTS
''')
nb.test("dense-block-parameters", 1, '''
check_dense_block(DenseBlock, only="parameters")
### BEGIN HIDDEN TESTS
check_dense_block(DenseBlock, only="parameters", num_layers=6, in_channels=64, growth_rate=32)
assert count(DenseBlock(2, 24, 12)) == dense_block_params(2, 24, 12)
### END HIDDEN TESTS
''')
nb.md("""
### Concatenation, seen from inside

Run a block of 6 layers on 24 channels with growth rate 12, and look at two things. First, the block's output starts
with its input, untouched: the difference is exactly zero, which an addition could not give. Second, the channels
each layer's first convolution receives (found by tracing the forward pass, whatever your modules are called) grow
by 12 per layer. For comparison, a residual stage keeps the same channel count in every block.
""")
nb.code('''
block = DenseBlock(6, 24, 12).to(device).eval()
x = torch.randn(4, 24, 14, 14, device=device)
with torch.no_grad():
    out = block(x)
untouched = (out[:, :24] - x).abs().max().item()
first_convs = [call for call in trace_forward(block, x, (nn.Conv2d,)) if call.module.kernel_size == (1, 1)]
seen = [call.input_shape[1] for call in first_convs]
print(f"output {tuple(out.shape)}; max |output[:, :24] - input| = {untouched}")
print(f"channels entering each layer: {seen}")
''', tags=["uses-exercise"])
nb.code('''
assert untouched == 0.0
assert out.shape == (4, 24 + 6 * 12, 14, 14)
assert seen == [24 + 12 * i for i in range(6)]
''', tags=["uses-exercise"])
nb.code('''
fig, ax = plt.subplots(figsize=(6, 3.5))
layers = range(1, len(seen) + 1)
ax.plot(layers, seen, marker="o", label="dense block: input of each layer (concatenation)")
ax.plot(layers, [24] * len(seen), marker="s", label="residual stage: input of each block (addition)")
ax.set_xlabel("layer (block) in the stage")
ax.set_ylabel("input channels")
ax.set_title("Concatenation grows the channels by k = 12 per layer")
ax.legend()
plt.show()
''', tags=["uses-exercise"])
nb.md("""
## 4. Transition layers

Channels keep growing inside a block, so DenseNet puts a **transition** between blocks: BN, ReLU, a 1x1 conv that
sets the channel count (DenseNet-BC halves it: compression 0.5), and a 2x2 **average** pooling with stride 2 that
halves the height and the width. Concatenation needs equal heights and widths, so a dense block never changes the
resolution; only transitions do.

### Exercise 4: `Transition(in_channels, out_channels)`
""")
nb.solution("transition", '''
class Transition(nn.Module):
    """Between dense blocks: BN-ReLU-conv1x1 sets the channels, AvgPool2d(2) halves height and width."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2),
        )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION
''')
nb.test("transition-downsampling", 2, '''
check_transition(Transition, only=["downsampling", "device"])
### BEGIN HIDDEN TESTS
check_transition(Transition, only=["downsampling", "device"], in_channels=96, out_channels=48)
### END HIDDEN TESTS
''')
nb.test("transition-parameters", 1, '''
check_transition(Transition, only="parameters")
### BEGIN HIDDEN TESTS
check_transition(Transition, only="parameters", in_channels=96, out_channels=48)
assert count(Transition(256, 128)) == transition_params(256, 128) == count(tv_densenet._Transition(256, 128))
### END HIDDEN TESTS
''')
nb.md("""
### Assembling a DenseNet

A DenseNet is a stem, dense blocks joined by transitions, then BN-ReLU (the blocks are pre-activation, so the last
features still need them), global average pooling and a linear classifier. One function builds both the small
network we train below and DenseNet-121 (blocks of 6, 12, 24 and 16 layers, growth rate 32, ImageNet stem). Built
from your parts, DenseNet-121 must have exactly torchvision's parameter count.
""")
nb.code('''
def assemble_densenet(stem: nn.Module, stem_channels: int, block_layers: tuple[int, ...], growth_rate: int,
                      num_classes: int = 10) -> nn.Sequential:
    """Stem, dense blocks joined by halving transitions, BN-ReLU, global average pooling, linear."""
    modules, channels = [stem], stem_channels
    for index, num_layers in enumerate(block_layers):
        modules.append(DenseBlock(num_layers, channels, growth_rate))
        channels += num_layers * growth_rate
        if index < len(block_layers) - 1:
            modules.append(Transition(channels, channels // 2))
            channels //= 2
    modules += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(channels, num_classes)]
    return nn.Sequential(*modules)


imagenet_stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                              nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
densenet121 = assemble_densenet(imagenet_stem, 64, (6, 12, 24, 16), growth_rate=32, num_classes=1000)
reference = tv_densenet.densenet121()
print(f"DenseNet-121 from your parts: {count(densenet121):,} parameters; torchvision: {count(reference):,}")
assert count(densenet121) == count(reference) == 7_978_856
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 5. the three families
nb.md("""
## 5. Three families, similar size, on Fashion-MNIST

Now the three families side by side, each about 60,000 to 80,000 parameters, on 28x28 Fashion-MNIST images:

- **ResNet**: the course's `ConvNet` (stem, three stages at 28, 14 and 7 pixels, global average pooling, linear)
  with torchvision's `BasicBlock`, widths 16, 32, 64, one block per stage.
- **ResNeXt**: the same `ConvNet` with your `ResNeXtBlock`, widths 32, 64, 128, blocks (1, 2, 2), cardinality 8 and
  an inner width of half the block's output (bottleneck width 2, 4, 8 by stage, the proportions of ResNeXt-50 32x4d).
- **DenseNet**: your parts, the CIFAR layout of DenseNet-BC scaled down: a 3x3 conv stem with $2k = 24$ channels,
  dense blocks of 1, 3 and 6 layers with growth rate 12 at 28, 14 and 7 pixels.

`count_macs` counts the multiply-accumulates of one image's forward pass (convolutions and linear layers).
""")
nb.code('''
class ResNetBlock(tv.BasicBlock):
    """torchvision's BasicBlock behind the (in_channels, out_channels, stride) interface of ConvNet."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        super().__init__(in_channels, out_channels, stride, downsample)


def resnext_block(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Cardinality 8, inner width out_channels / 2, as in ResNeXt-50 32x4d."""
    return ResNeXtBlock(in_channels, out_channels, cardinality=8, bottleneck_width=out_channels // 16, stride=stride)


def make_families() -> dict[str, nn.Module]:
    """The three models of the comparison, freshly initialised with the same seed."""
    rc.seed_everything(0)
    dense_stem = nn.Conv2d(1, 24, 3, padding=1, bias=False)
    return {
        "ResNet": convnets.ConvNet(ResNetBlock, widths=(16, 32, 64), depths=(1, 1, 1)),
        "ResNeXt": convnets.ConvNet(resnext_block, widths=(32, 64, 128), depths=(1, 2, 2)),
        "DenseNet": assemble_densenet(dense_stem, 24, (1, 3, 6), growth_rate=12),
    }


families = make_families()
sizes = {name: convnets.count_parameters(model) for name, model in families.items()}
macs = {name: convnets.count_macs(model) for name, model in families.items()}
for name in families:
    print(f"{name:>9}: {sizes[name]:>7,} parameters, {macs[name] / 1e6:5.1f} M multiply-accumulates per image")
print(f"largest / smallest parameter count: {max(sizes.values()) / min(sizes.values()):.2f}")
''', tags=["uses-exercise"])
nb.code('''
assert all(60_000 <= size <= 80_000 for size in sizes.values())
assert max(sizes.values()) / min(sizes.values()) < 1.3
''', tags=["uses-exercise"])
nb.md("""
Training uses the course's `fit` (Adam, learning rate 0.001), the same seed and the same batches for all three. On a
CPU the default run is short (two epochs of 150 steps of 128 images, a few minutes); on a GPU it trains 10 full
epochs; under autograding (fast mode) it is a smoke test: two epochs of 30 steps of 32 images, from a 4,096-image
subset.
""")
nb.code('''
data = load_dataset("fashion-mnist", device=device)
if rc.fast_mode():
    schedule = {"epochs": 2, "batch_size": 32}  # fit caps a fast-mode epoch at 30 steps
elif device.type == "cuda":
    schedule = {"epochs": 10, "batch_size": 128}
else:
    schedule = {"epochs": 2, "max_steps_per_epoch": 150, "batch_size": 128}
print(f"{len(data.train):,} training and {len(data.test):,} test images; schedule {schedule}")
''')
nb.code('''
histories = {}


def train(name: str) -> None:
    """Train one family with the shared schedule and report its final test accuracy."""
    histories[name] = fit(families[name], data, **schedule, progress=False)
    print(f"{name}: test accuracy {histories[name].test_accuracy[-1]:.3f} after {histories[name].seconds:.0f} s")
''')
nb.code('''
train("ResNet")
''', tags=["uses-exercise"])
nb.code('''
train("ResNeXt")
''', tags=["uses-exercise"])
nb.code('''
train("DenseNet")
''', tags=["uses-exercise"])
nb.code('''
figure = plots.plot_history(histories, metrics=("train_loss", "test_accuracy"))
figure.suptitle("ResNet, ResNeXt and DenseNet of similar size on Fashion-MNIST", y=1.02)
plt.show()
''', tags=["uses-exercise"])
nb.code('''
print(f"{'family':>9}{'parameters':>12}{'MACs/image':>13}{'test accuracy':>15}{'seconds':>9}")
for name, history in histories.items():
    print(f"{name:>9}{sizes[name]:>12,}{macs[name]:>13,}{history.test_accuracy[-1]:>15.3f}{history.seconds:>9.0f}")
''', tags=["uses-exercise"])
nb.md("""
What to read in the table, and what not to:

- **Compute is not size.** At similar parameter counts, the DenseNet does the most multiply-accumulates per image:
  its layers run on many concatenated channels, and its first block runs at full resolution. ResNeXt does the fewest:
  its grouped 3x3 convs are cheap. Wall time is a third matter, and depends on the hardware: grouped convolutions and
  many small layers use a processor less efficiently than a few large ones, so compare the seconds column too.
- **A short run is not a ranking.** Differences between such small models after a few hundred steps depend on the
  seed and the schedule (in fast mode, 60 small steps, they mostly say which model starts learning first). The papers'
  claims are about ImageNet-scale models trained for long: ResNeXt beats a ResNet of equal budget (Xie et al. 2017),
  and DenseNet matches ResNets with fewer parameters (Huang et al. 2017).

The checks below assert only what is robust: every model learns (well above the 10% of guessing), more so after a
full run.
""")
nb.code('''
floor = 0.5 if rc.fast_mode() else 0.8 if device.type == "cpu" else 0.85
for name, history in histories.items():
    assert history.test_accuracy[-1] > floor, (name, history.test_accuracy[-1])
assert macs["DenseNet"] > macs["ResNet"] > macs["ResNeXt"]
''', tags=["uses-exercise"])

nb.md("""
## Summary

- A grouped convolution with `groups=G` is exactly $G$ independent convolutions on channel slices, concatenated; it
  has $k^2 C_{in} C_{out} / G$ weights.
- **ResNeXt** = a ResNet bottleneck whose 3x3 conv is grouped. The **cardinality** $C$ is the number of groups (paths);
  the bottleneck width $d$ is the channels per group. `groups = channels // cardinality` swaps the two and builds a
  different, larger network. At a fixed budget, more groups buy a wider block.
- **DenseNet** concatenates, it does not add: each layer returns `cat([x, new])`, passes its input through unchanged,
  and grows the channels by the growth rate $k$. Transitions (BN-ReLU-conv1x1-AvgPool2d(2)) shrink channels and
  resolution between blocks. DenseNet is a densely *connected* network, not a residual one.
- Parameter counts follow from the diagrams; yours match torchvision's ResNeXt-50 blocks and DenseNet-121 exactly.
- Similar parameter counts can hide very different compute: count both.

## Going further

- Xie, Girshick, Dollár, Tu & He (2017), *Aggregated Residual Transformations for Deep Neural Networks*: Fig. 3 (the
  three equivalent forms), Table 2 (cardinality against width at equal budget).
- Huang, Liu, van der Maaten & Weinberger (2017), *Densely Connected Convolutional Networks*: Table 1 (DenseNet-121
  to 264), section 3 (bottleneck and compression, "BC").
- Taken to its limit, grouping gives one channel per group: the *depthwise* convolution of MobileNet (Howard et al.
  2017). Try `ResNeXtBlock(256, 256, 128, 1)` and count its parameters.
- DenseNet's concatenations keep every feature map of a block alive in memory; Pleiss et al. (2017),
  *Memory-Efficient Implementation of DenseNets*, recompute them instead (torchvision's `memory_efficient=True`).
- Next: lesson 07, design your own residual network under a parameter budget.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
