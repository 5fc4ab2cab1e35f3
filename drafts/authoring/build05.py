import sys
sys.path.insert(0, "/tmp/nbsrc")
from nbtools import NB, badge, setup_cell

SLUG = "05_building_a_resnet"
nb = NB(SLUG)

nb.md(f"""
# Lesson 05 · Building a ResNet

{badge(SLUG)}

Lesson 04 built the residual block. A residual *network* is those blocks arranged with a plan: a **stem** that turns
the image into feature maps, **stages** of blocks whose width doubles each time the resolution halves, and a **head**
that turns the last feature map into class scores. In this lesson you assemble ResNet-18 from your own pieces,
check it against torchvision's, and train a small ResNet on Fashion-MNIST.

**By the end of this lesson you can**

1. stack blocks into a stage, and put the stride where it belongs;
2. add a shortcut around a whole stage (the "cross-layer" connection of the article this course started from);
3. explain what global average pooling saves, in parameters and in sensitivity to where things are in the image;
4. build `ResNet(block, layers)`, match torchvision's ResNet-18 parameter for parameter and output for output;
5. train a ResNet with a loss and optimiser you can explain, and read its confusion matrix and its mistakes;
6. show with numbers that a deep plain CNN trains worse than a residual one of the same depth.

Each exercise has check cells: PASS, or FAIL with what is wrong. The checks test what your code *does*, so any
correct style passes.
""")
nb.code(setup_cell())
nb.code('''
from collections.abc import Callable, Sequence
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, resnet34

import residual_course as rc
from residual_course import plots
from residual_course.checks import check_basic_block
from residual_course.checks.blocks import basic_block_params
from residual_course.checks.report import exact_float32
from residual_course.checks.resnet import (
    check_gap_head,
    check_make_stage,
    check_resnet,
    check_stage_shortcut,
    flatten_head_params,
    gap_head_params,
    projection_params,
    stem_params,
)
from residual_course.convnets import ConvNet, PlainBlock, count_macs, count_parameters
from residual_course.data import Split, load_dataset
from residual_course.probes import trace_forward
from residual_course.training import History, evaluate, fit

device = rc.get_device()
print(f"device: {device}, fast mode: {rc.fast_mode()}")
''')

# ------------------------------------------------------------------ 1. BasicBlock
nb.md("""
## 1. Your BasicBlock from lesson 04

A ResNet-18 is made of the block you wrote in lesson 04. The course's helper package ships no solutions, so **paste
your `BasicBlock` from lesson 04** into the cell below (the whole class, with its `forward`).

The cell after it runs lesson 04's check on it. It earns no points here: the graded checks of this lesson hand your
functions stand-in blocks of their own, so a mistake in your block never costs points twice. The measurements later
in the lesson (ResNet-18 against torchvision's, the training runs) do use your block, so make it pass.
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
nb.code('''
check_basic_block(BasicBlock)
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 2. make_stage
nb.md("""
## 2. Stacking blocks into a stage

ResNets group their blocks into **stages**. Inside a stage all blocks have the same width (number of channels) and
work at the same resolution; from one stage to the next the width doubles and the resolution halves. ResNet-18 has
four stages of two basic blocks each, ResNet-34 stages of 3, 4, 6 and 3 blocks (He et al. 2015, *Deep Residual
Learning for Image Recognition*, Table 1). The article this course started from calls a stage a "deep residual
block".

Only the **first** block of a stage changes the shape: it takes the stage's stride (2 halves the height and width,
1 keeps them) and maps `in_channels` to `out_channels`, so it is the block with the projection shortcut. Every later
block maps `out_channels` to `out_channels` with stride 1 and keeps the identity shortcut.

```
in_channels, H x W ──► block(in, out, stride) ──► block(out, out, 1) ──► ... ──► out_channels, H/stride x W/stride
```

### Exercise 1: `make_stage(block, in_channels, out_channels, num_blocks, stride)`

Return an `nn.Sequential` of `num_blocks` blocks. `block` is any class (or function) with the course's block
interface, `block(in_channels, out_channels, stride)`, such as your `BasicBlock`: call it once per block.
""")
nb.solution("make-stage", '''
def make_stage(block: Callable[[int, int, int], nn.Module], in_channels: int, out_channels: int, num_blocks: int,
               stride: int = 1) -> nn.Sequential:
    """num_blocks blocks: the first takes the stride and changes the channels, the others keep the shape."""
    ### BEGIN SOLUTION
    blocks = [block(in_channels, out_channels, stride)]
    for _ in range(num_blocks - 1):
        blocks.append(block(out_channels, out_channels, 1))
    return nn.Sequential(*blocks)
    ### END SOLUTION
''')
nb.md("""
The checks give your function a stand-in block that records what it was asked to build (and is not a residual block:
your `BasicBlock` plays no part in the grading of this lesson's exercises).
""")
nb.test("make-stage-blocks", 2, '''
check_make_stage(make_stage, only=["blocks", "device"])
### BEGIN HIDDEN TESTS
check_make_stage(make_stage, only=["blocks", "device"], channels=3)
_stage = make_stage(PlainBlock, 4, 8, 3, 1).to(device)
assert _stage(torch.randn(2, 4, 6, 6, device=device)).shape == (2, 8, 6, 6)
assert count_parameters(_stage) == sum(count_parameters(PlainBlock(*args)) for args in [(4, 8), (8, 8), (8, 8)])
### END HIDDEN TESTS
''')
nb.test("make-stage-stride", 2, '''
check_make_stage(make_stage, only="stride")
### BEGIN HIDDEN TESTS
check_make_stage(make_stage, only="stride", channels=3)
_calls = trace_forward(make_stage(PlainBlock, 4, 8, 3, 2).to(device), torch.randn(2, 4, 9, 9, device=device),
                       (PlainBlock,))
assert [call.output_shape[-1] for call in _calls] == [5, 5, 5], "only the first block halves the size (9 -> 5)"
### END HIDDEN TESTS
''')
nb.md("""
ResNet-18's second stage, built from your blocks: `trace_forward` lists each block that runs, with the shape it
receives and the shape it returns. Only the first block halves 56x56 to 28x28 and doubles the channels, and the
stage's parameters are exactly those of its two blocks (lesson 04's formula).
""")
nb.code('''
stage = make_stage(BasicBlock, 64, 128, num_blocks=2, stride=2).to(device).eval()
for call in trace_forward(stage, torch.randn(1, 64, 56, 56, device=device), (BasicBlock,)):
    print(f"{type(call.module).__name__}: {call.input_shape} -> {call.output_shape}")
stage_params = count_parameters(stage)
print(f"parameters: {stage_params:,} = {basic_block_params(64, 128, 2):,} + {basic_block_params(128, 128):,}")
assert stage_params == basic_block_params(64, 128, 2) + basic_block_params(128, 128)
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 3. StageWithShortcut
nb.md("""
## 3. A shortcut across a whole stage

The article also describes a "cross-layer" residual connection: one more shortcut that jumps over a *whole stage*,
added to the stage's output before a final ReLU. It is the block's idea one level up:

```
x ──► [ block ─► block ─► ... ─► block ] ──► (+) ─► ReLU ─► out
 └──────── shortcut(x): identity, or 1x1 conv (stride) + BN ────┘
```

He et al.'s ResNets (and torchvision's) do not have it: there, every block already carries its own shortcut.
Writing it shows that a shortcut needs nothing but a module and a matching shape.

### Exercise 2: `StageWithShortcut(stage, in_channels, out_channels, stride=1)`

- `stage` is any module that maps `(N, in_channels, H, W)` to `(N, out_channels, H', W')`, where `H' = ceil(H /
  stride)` (and so for `W`); for example `make_stage(BasicBlock, 64, 128, 2, stride=2)`.
- Keep `stage` as an attribute of your module, so that its parameters are registered.
- `forward(x)` returns `relu(stage(x) + shortcut(x))`.
- `shortcut` is the identity when `stride == 1` and `in_channels == out_channels`; otherwise a 1x1 convolution with
  that stride and no bias, followed by BatchNorm: the projection of lesson 04.
""")
nb.solution("stage-shortcut", '''
class StageWithShortcut(nn.Module):
    """relu(stage(x) + shortcut(x)): a shortcut across a whole stage, projected when the shape changes."""

    def __init__(self, stage: nn.Module, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        ### BEGIN SOLUTION
        self.stage = stage
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return torch.relu(self.stage(x) + self.shortcut(x))
        ### END SOLUTION
''')
nb.md("""
The first check wraps a stand-in stage whose shape does not change: your module must return `relu(stage(x) + x)`,
and exactly `relu(x)` once the stage's weights are all zero (the identity-when-the-branch-is-zero property of
lesson 04, one level up). The second check changes the stride and the channels and counts the projection's
parameters.
""")
nb.test("stage-shortcut-identity", 2, '''
check_stage_shortcut(StageWithShortcut, only=["identity", "device"])
### BEGIN HIDDEN TESTS
check_stage_shortcut(StageWithShortcut, only=["identity", "device"], channels=5)
_plain = nn.Sequential(PlainBlock(6, 6), PlainBlock(6, 6))
_wrapped = StageWithShortcut(_plain, 6, 6).to(device).eval()
with torch.no_grad():
    for _parameter in _plain.parameters():
        _parameter.zero_()
    _x = torch.randn(2, 6, 5, 5, device=device)
    assert torch.equal(_wrapped(_x), torch.relu(_x)), "with a zero stage the output must be relu(x)"
### END HIDDEN TESTS
''')
nb.test("stage-shortcut-projection", 2, '''
check_stage_shortcut(StageWithShortcut, only="projection")
### BEGIN HIDDEN TESTS
check_stage_shortcut(StageWithShortcut, only="projection", channels=5)
_inner = nn.Conv2d(4, 8, 3, 2, 1)
_wrapped = StageWithShortcut(_inner, 4, 8, 2).to(device)
assert _wrapped(torch.randn(2, 4, 7, 7, device=device)).shape == (2, 8, 4, 4), "odd sizes: ceil(7 / 2) = 4"
assert count_parameters(_wrapped) - count_parameters(_inner) == 4 * 8 + 2 * 8
### END HIDDEN TESTS
''')
nb.md("""
What it costs around ResNet-18's third stage (128 to 256 channels, stride 2): one projection, a small fraction of
the stage's parameters.
""")
nb.code('''
inner = make_stage(BasicBlock, 128, 256, num_blocks=2, stride=2)
wrapped = StageWithShortcut(inner, 128, 256, stride=2).to(device)
extra = count_parameters(wrapped) - count_parameters(inner)
output = wrapped(torch.randn(2, 128, 28, 28, device=device))
print(f"output {tuple(output.shape)}; the stage has {count_parameters(inner):,} parameters, the shortcut adds "
      f"{extra:,} ({extra / count_parameters(inner):.1%})")
assert extra == projection_params(128, 256, 2) == 128 * 256 + 2 * 256
assert output.shape == (2, 256, 14, 14)
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 4. GAP head
nb.md("""
## 4. The head: global average pooling

For a 224x224 image, the last stage of ResNet-18 outputs 512 channels at 7x7 positions. Earlier networks such as
VGG flattened such a map into one long vector for their fully connected layers. ResNet instead averages each channel
over all positions, **global average pooling** (GAP; Lin, Chen & Yan 2013, *Network In Network*), and feeds the 512
averages to a single linear layer. Three consequences, measured below: the head needs far fewer parameters; the
network accepts any image size; and the logits depend much less on *where* in the image a feature appears.

### Exercise 3: `GAPHead(in_channels, num_classes)`

`nn.AdaptiveAvgPool2d(1)` (the average over all positions, however many there are), flatten to
`(N, in_channels)`, then `nn.Linear(in_channels, num_classes)`. Return **logits**, no softmax (section 6 says why).
""")
nb.solution("gap-head", '''
class GAPHead(nn.Module):
    """Average each channel over all positions, then one Linear layer to class logits."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.fc(self.flatten(self.pool(x)))
        ### END SOLUTION
''')
nb.test("gap-head-pools", 2, '''
check_gap_head(GAPHead, only="pools")
### BEGIN HIDDEN TESTS
check_gap_head(GAPHead, only="pools", channels=3, num_classes=4)
_head = GAPHead(8, 2).to(device)
assert _head(torch.randn(2, 8, 13, 9, device=device)).shape == (2, 2)
### END HIDDEN TESTS
''')
nb.test("gap-head-linear", 1, '''
check_gap_head(GAPHead, only="linear")
### BEGIN HIDDEN TESTS
check_gap_head(GAPHead, only="linear", channels=7, num_classes=3)
### END HIDDEN TESTS
''')
nb.md(r"""
**Parameters.** Flattening a $C \times H \times W$ map for $K$ classes needs a weight per class for every channel
at every position, $CHWK + K$ parameters; GAP leaves $CK + K$. For ResNet-18's 512x7x7 map and 10 classes:
""")
nb.code('''
gap_count = count_parameters(GAPHead(512, 10))
flatten_count = count_parameters(nn.Sequential(nn.Flatten(), nn.Linear(512 * 7 * 7, 10)))
print(f"GAP + Linear: {gap_count:,} parameters;  flatten + Linear: {flatten_count:,} parameters "
      f"({flatten_count / gap_count:.0f}x)")
assert gap_count == gap_head_params(512, 10) == 5_130
assert flatten_count == flatten_head_params(512, 7, 7, 10) == 250_890
''', tags=["uses-exercise"])
nb.md("""
With ImageNet's 1000 classes the flattened head alone would hold more than twice the parameters of all the rest of
ResNet-18 (the rest is the stem and the blocks: `stem_params` and lesson 04's formula):
""")
nb.code('''
rest_of_resnet18 = stem_params(3) + sum(basic_block_params(*shape) for shape in [
    (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2), (512, 512, 1)])
heads = {"GAP": gap_head_params(512, 1000), "flatten": flatten_head_params(512, 7, 7, 1000)}
for name, count in heads.items():
    print(f"{name:>8} head for 1000 classes: {count:>12,} parameters ({count / rest_of_resnet18:.2f}x the rest)")
assert heads["flatten"] > 2 * rest_of_resnet18 > 40 * heads["GAP"]
''')
nb.md("""
**Any image size.** The average of a 7x7 map and of a 10x10 map are both one number per channel, so the same head
serves both; a flattening head is tied to the one size it was built for.
""")
nb.code('''
head = GAPHead(512, 10).to(device)
for size in (7, 10):
    print(f"512x{size}x{size} map -> logits {tuple(head(torch.randn(2, 512, size, size, device=device)).shape)}")
''', tags=["uses-exercise"])
nb.md(r"""
**Where things are.** Shift an image by a few pixels and a convolution's feature maps shift with it (up to the
borders, and up to the stride-2 layers, which only see every other position). An average over all positions hardly
notices; a flattened head sees every feature move to other weights. To measure it, take one network body (the stem
and stages of a small residual CNN, randomly initialised, 64 channels at 7x7 at the end) and put either head on it.
The shift is `torch.roll` along the width: the columns pushed out on the right come back on the left, and at the
borders of these images they are mostly background. For each test image $x$ we compare the change of the logits
under a shift with the typical difference between the logits of two *different* images $x'$:

$$\text{sensitivity} = \frac{\operatorname{mean}\,\lVert f(\operatorname{shift}(x)) - f(x)\rVert}
{\operatorname{mean}\,\lVert f(x') - f(x)\rVert}$$

Near 0, the shift does not matter; near 1, a shifted image looks to the network like another image. The ratio does
not depend on the scale of the logits, so the two heads compare fairly.
""")
nb.code('''
rc.seed_everything(0)
probe_images = load_dataset("fashion-mnist", device=device, train_size=1, test_size=1024).test.images
body = ConvNet(BasicBlock, widths=(16, 32, 64), depths=(1, 1, 1))
body = nn.Sequential(body.stem, body.stages).to(device).eval()  # 1x28x28 -> 64x7x7
shift_heads = {"GAP": GAPHead(64, 10), "flatten": nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 10))}
shifts = [1, 2, 3, 4]
images, other_images = probe_images[:512], probe_images[512:]
sensitivity = {}
with torch.no_grad():
    features, other_features = body(images), body(other_images)
    shifted_features = [body(torch.roll(images, shift, dims=3)) for shift in shifts]  # shifted right, wrapping around
    for name, shift_head in shift_heads.items():
        shift_head.to(device).eval()
        logits = shift_head(features)
        spread = (shift_head(other_features) - logits).norm(dim=1).mean()
        sensitivity[name] = [((shift_head(moved) - logits).norm(dim=1).mean() / spread).item()
                             for moved in shifted_features]
        measured = zip(shifts, sensitivity[name], strict=True)
        print(f"{name:>8}: " + ", ".join(f"shift {shift}px {value:.2f}" for shift, value in measured))

fig, ax = plt.subplots(figsize=(5, 3))
for name, values in sensitivity.items():
    ax.plot(shifts, values, marker="o", label=f"{name} head")
ax.set_xlabel("horizontal shift (pixels)")
ax.set_ylabel("sensitivity of the logits")
ax.set_ylim(0, None)
ax.set_title("same body, two heads")
ax.legend()
plt.show()
''', tags=["uses-exercise"])
nb.code('''
assert all(g < f for g, f in zip(sensitivity["GAP"], sensitivity["flatten"], strict=True))
assert sum(sensitivity["GAP"]) < 0.7 * sum(sensitivity["flatten"])
''', tags=["uses-exercise"])
nb.md("""
The GAP head is less sensitive at every shift, but not immune: the body's two stride-2 stages sample every fourth
position in the end, so a shift that is not a multiple of 4 moves features *between* the samples (Zhang 2019,
*Making Convolutional Networks Shift-Invariant Again*; Azulay & Weiss 2019, *Why do deep convolutional networks
generalize so poorly to small image transformations?*). Training on shifted copies of the images (section 7 does
it on a GPU) lets the network learn more of this invariance from the data.
""")

# ------------------------------------------------------------------ 5. ResNet
nb.md("""
## 5. Assembling the ResNet

The whole network, as in He et al. (2015, Table 1) and torchvision:

| part | ImageNet layout (`small_input=False`) | 28x28 images (`small_input=True`) |
| --- | --- | --- |
| stem | 7x7 conv to `widths[0]` channels, stride 2, padding 3, no bias; BN; ReLU; 3x3 max-pool, stride 2, padding 1 | 3x3 conv to `widths[0]` channels, stride 1, padding 1, no bias; BN; ReLU |
| stage 1 | `make_stage(block, widths[0], widths[0], layers[0], stride=1)` | the same |
| stage i > 1 | `make_stage(block, widths[i-1], widths[i], layers[i], stride=2)` | the same |
| head | `GAPHead(widths[-1], num_classes)` | the same |

The ImageNet stem shrinks a 224x224 image 4x before the first block (to 56x56), which keeps the expensive early
layers cheap. A 28x28 image cannot afford that: with `small_input=True` the stem keeps the resolution, as in He et
al.'s networks for CIFAR (section 4.2 of the paper).

### Exercise 4: `ResNet(block, layers, num_classes=1000, in_channels=3, small_input=False, widths=(64, 128, 256, 512))`

Use your `make_stage` and `GAPHead`. `layers[i]` is the number of blocks of stage `i`; `widths` has one entry per
stage (the default is ResNet's), which lets us build small ResNets later. Use only the course's block interface
`block(in_channels, out_channels, stride)`: the block's output has `out_channels` channels (do not read attributes
such as `block.expansion`).
""")
nb.solution("resnet", '''
class ResNet(nn.Module):
    """Stem, one stage per entry of `layers` (width up, resolution down), global average pooling, linear."""

    def __init__(self, block: Callable[[int, int, int], nn.Module], layers: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, widths: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        ### BEGIN SOLUTION
        if small_input:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        stages, channels = [], widths[0]
        for index, (width, num_blocks) in enumerate(zip(widths, layers, strict=True)):
            stages.append(make_stage(block, channels, width, num_blocks, stride=1 if index == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = GAPHead(channels, num_classes)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.head(self.stages(self.stem(x)))
        ### END SOLUTION
''')
nb.md("""
The checks build your `ResNet` around their stand-in block. The stem checks stop the forward pass at the first block,
and the others feed images small enough that the last feature map is 1x1: so a mistake in `make_stage` or `GAPHead`
is charged to those exercises only, not again here.
""")
nb.test("resnet-stem", 2, '''
check_resnet(ResNet, only="stem")
### BEGIN HIDDEN TESTS
check_resnet(ResNet, only="stem", layers=[1, 1], widths=(8, 16))
### END HIDDEN TESTS
''')
nb.test("resnet-stages", 2, '''
check_resnet(ResNet, only="stages")
### BEGIN HIDDEN TESTS
check_resnet(ResNet, only="stages", layers=[3, 4, 6, 3])
check_resnet(ResNet, only="stages", layers=[1, 2, 1], widths=(4, 8, 16))
### END HIDDEN TESTS
''')
nb.test("resnet-head-params", 2, '''
check_resnet(ResNet, only=["head", "params", "device"])
### BEGIN HIDDEN TESTS
check_resnet(ResNet, only=["head", "params", "device"], layers=[1, 1, 1], widths=(8, 16, 32), num_classes=5)
### END HIDDEN TESTS
''')
nb.test("resnet-small-input", 2, '''
check_resnet(ResNet, only="small input")
### BEGIN HIDDEN TESTS
check_resnet(ResNet, only="small input", layers=[2, 2, 2], widths=(16, 32, 64))
### END HIDDEN TESTS
''')
nb.md("""
### ResNet-18 and ResNet-34 from your blocks

Now with your `BasicBlock`: `ResNet(BasicBlock, [2, 2, 2, 2])` is ResNet-18 and `[3, 4, 6, 3]` is ResNet-34.
Their parameter counts must equal torchvision's, and split into stem, blocks and head as the formulas say.
""")
nb.code('''
resnet18_yours, resnet18_theirs = ResNet(BasicBlock, [2, 2, 2, 2]), resnet18(weights=None)
resnet34_yours, resnet34_theirs = ResNet(BasicBlock, [3, 4, 6, 3]), resnet34(weights=None)
for name, yours, theirs in [("ResNet-18", resnet18_yours, resnet18_theirs), ("ResNet-34", resnet34_yours,
                                                                              resnet34_theirs)]:
    print(f"{name}: yours {count_parameters(yours):,} parameters, torchvision {count_parameters(theirs):,}")
    assert count_parameters(yours) == count_parameters(theirs)
assert count_parameters(resnet18_yours) == 11_689_512

stem_count, head_count = stem_params(3), gap_head_params(512, 1000)
blocks_count = count_parameters(resnet18_yours) - stem_count - head_count
print(f"ResNet-18 = stem {stem_count:,} + blocks {blocks_count:,} + head {head_count:,}")
assert (stem_count, blocks_count, head_count) == (9_536, 11_166_976, 513_000)
''', tags=["uses-exercise"])
nb.md("""
Equal counts could still hide a different arrangement. A stronger test: give your ResNet-18 torchvision's weights and
compare the outputs. torchvision's `resnet18(weights=None)` is randomly initialised (nothing is downloaded), which is
enough: two networks that compute the same function agree for any weights. The function below copies the
`state_dict` tensors (weights and BatchNorm statistics) one by one **in order**, since your layers have other names
than torchvision's; it stops at the first tensor whose shape does not fit. Both networks run in eval mode, with
TF32 switched off on a GPU so that both use exact float32 arithmetic.
""")
nb.code('''
def copy_weights_in_order(source: nn.Module, target: nn.Module) -> int:
    """Copy every parameter and buffer of `source` onto `target`, paired by position because names differ."""
    source_tensors, target_slots = list(source.state_dict().values()), list(target.state_dict().items())
    if len(source_tensors) != len(target_slots):
        raise ValueError(f"the source has {len(source_tensors)} tensors, the target {len(target_slots)}")
    with torch.no_grad():
        for value, (name, slot) in zip(source_tensors, target_slots, strict=True):
            if value.shape != slot.shape:
                raise ValueError(f"{name} has shape {tuple(slot.shape)} but the next tensor of the source has "
                                 f"{tuple(value.shape)}: create your layers in torchvision's order (in a block: "
                                 "conv1, bn1, conv2, bn2, then the shortcut's conv and BN)")
            slot.copy_(value)
    return len(target_slots)


resnet18_yours.to(device).eval()
resnet18_theirs.to(device).eval()
copied = copy_weights_in_order(resnet18_theirs, resnet18_yours)
images = torch.randn(2, 3, 224, 224, device=device)
with torch.no_grad(), exact_float32():
    largest_difference = (resnet18_yours(images) - resnet18_theirs(images)).abs().max().item()
print(f"{copied} tensors copied; largest |yours - torchvision| over 2 x 1000 logits: {largest_difference:.1e}")
''', tags=["uses-exercise"])
nb.code('''
assert largest_difference < 1e-5
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 6. the seed's model, loss and optimiser
nb.md("""
## 6. The article's MNIST model, in PyTorch

The article ends with a Keras model for MNIST: a 3x3 convolution with 64 filters, BatchNorm and ReLU, two residual
blocks of 64 channels, global average pooling and a 10-way dense layer with softmax, trained with Adam and
categorical cross-entropy. As printed, its code feeds the 28x28 arrays that `mnist.load_data()` returns to an input
layer declared as 28x28x1; Keras needs the channel axis added first (`x_train[..., None]`). The course's loader adds
it for you, channels first as PyTorch expects: a batch is `(N, 1, 28, 28)`. (Its residual block also leaves out the
ReLU after the addition; yours has it, as in He et al.)

The data set is one argument away. The course uses Fashion-MNIST (MNIST's digits are too easy to tell
architectures apart); change `DATASET` to `"mnist"` to run the lesson on digits (the first run then needs the
internet, or the four MNIST files in the course's data folder).
""")
nb.code('''
DATASET = "fashion-mnist"  # or "mnist"
data = load_dataset(DATASET, device=device)
print(f"{DATASET}: {len(data.train):,} training and {len(data.test):,} test images; "
      f"one batch of 64: {tuple(data.train.images[:64].shape)}")
assert data.train.images.shape[1:] == (1, 28, 28)
''')
nb.md("""
The article's model, built from your pieces. It is your `ResNet` with one stage of two blocks, 64 channels wide and
the small-input stem, so the parameter counts agree. Keeping 64 channels at the full 28x28 resolution is expensive,
though: it needs more multiply-accumulates per image than the deeper, three-stage ResNet of section 7, which halves
the resolution twice.
""")
nb.code('''
num_classes = len(data.class_names)
seed_model = nn.Sequential(
    nn.Conv2d(1, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
    BasicBlock(64, 64), BasicBlock(64, 64),
    GAPHead(64, num_classes),
).to(device)
as_resnet = ResNet(BasicBlock, [2], num_classes=num_classes, in_channels=1, small_input=True, widths=(64,))
three_stages = ResNet(BasicBlock, [2, 2, 2], num_classes=num_classes, in_channels=1, small_input=True,
                      widths=(32, 64, 128))
for name, model in [("the article's model", seed_model), ("ResNet(BasicBlock, [2], widths=(64,))", as_resnet),
                    ("ResNet(BasicBlock, [2, 2, 2], widths=(32, 64, 128))", three_stages)]:
    macs = count_macs(model.to(device))
    print(f"{name:<52} {count_parameters(model):>9,} parameters {macs / 1e6:>7.1f} M multiply-accumulates per image")
assert count_parameters(seed_model) == count_parameters(as_resnet)
assert count_macs(seed_model) > count_macs(three_stages)
''', tags=["uses-exercise"])
nb.md(r"""
### Loss and optimiser

Keras's `Dense(10, activation="softmax")` with `categorical_crossentropy` on one-hot labels becomes, in PyTorch, a
linear layer that returns **logits** and `nn.CrossEntropyLoss` on class indices. The loss applies log-softmax
itself, in one numerically stable step: for a batch of $N$ images,
$\mathcal{L} = -\frac{1}{N}\sum_i \log \operatorname{softmax}(z_i)_{y_i}$. A softmax at the end of the model
*and* `CrossEntropyLoss` would apply softmax twice: it still runs, but it squashes the logits and slows learning.
The same number, computed both ways on one batch:
""")
nb.code('''
loss_fn = nn.CrossEntropyLoss()
batch_images, batch_labels = data.train.images[:64], data.train.labels[:64]
logits = seed_model(batch_images)
by_hand = -torch.log_softmax(logits, dim=1)[torch.arange(len(batch_labels), device=device), batch_labels].mean()
print(f"nn.CrossEntropyLoss: {loss_fn(logits, batch_labels).item():.4f};  "
      f"-mean log softmax(logits)[true class]: {by_hand.item():.4f}")
assert torch.allclose(loss_fn(logits, batch_labels), by_hand, atol=1e-5)
''', tags=["uses-exercise"])
nb.md("""
The optimiser is the article's: Adam (Kingma & Ba 2015, *Adam: A Method for Stochastic Optimization*) with its
usual learning rate of 0.001, which adapts a step size for every parameter and is forgiving to tune. The whole
of Keras's `compile` + `fit` is this loop. On a CPU it runs a few dozen steps (the model is expensive, see above);
on a GPU, one epoch.
""")
nb.code('''
rc.seed_everything(0)
optimizer = torch.optim.Adam(seed_model.parameters(), lr=1e-3)
batch_size = 32 if rc.fast_mode() else 128
if rc.fast_mode():
    seed_steps = 10
elif device.type == "cuda":
    seed_steps = len(data.train) // batch_size
else:
    seed_steps = 30
order = torch.randperm(len(data.train), device=device)
step_losses = []
seed_model.train()
for batch in order.split(batch_size)[:seed_steps]:
    loss = loss_fn(seed_model(data.train.images[batch]), data.train.labels[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    step_losses.append(loss.item())
print(f"{len(step_losses)} steps: loss {step_losses[0]:.3f} at the first, {step_losses[-1]:.3f} at the last")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, len(step_losses) + 1), step_losses)
ax.set_xlabel("step")
ax.set_ylabel("training loss (one batch)")
ax.set_title("the article's model, Adam, cross-entropy")
plt.show()
''', tags=["uses-exercise"])
nb.code('''
assert sum(step_losses[-3:]) / 3 < step_losses[0] - 0.2
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 7. small ResNet training
nb.md("""
## 7. Training a small ResNet on Fashion-MNIST

Now a real training run of your `ResNet` with the small-input stem. How long it trains depends on where you are:

| where | model | training |
| --- | --- | --- |
| GPU | widths (32, 64, 128), two blocks per stage | 20 epochs, shifted and flipped images |
| CPU | widths (16, 32, 64), one block per stage | 3 x 150 steps, no augmentation |
| fast mode (grading, CI) | widths (8, 16, 32), one block per stage | 2 x 15 steps on a subset |

The loop below is `fit`'s, plus two things worth knowing:

- **SGD with momentum and a one-cycle schedule.** He et al. trained ResNets with SGD and momentum 0.9, starting
  from a large learning rate and lowering it. A one-cycle schedule (Smith & Topin 2019, *Super-Convergence*) warms
  the rate up, then anneals it along a cosine to almost zero; its authors found it reaches good accuracy in fewer
  epochs. Weight decay (an L2 penalty) keeps the weights small.
- **Data augmentation on the device.** Each training image is shifted by up to 2 pixels in each direction (padding
  by repeating its border) and flipped left-right half the time, directly on the tensors: every epoch sees new
  variants of the same training images. It lets the network learn, from the data, the shift invariance that
  section 4 found incomplete.
""")
nb.code('''
def augment(images: torch.Tensor, padding: int = 2) -> torch.Tensor:
    """Random shifts of up to `padding` pixels and random left-right flips, per image, on the images' device."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + dy
    columns = torch.arange(width, device=images.device).view(1, 1, width) + dx
    crops = padded[torch.arange(n, device=images.device).view(n, 1, 1), :, rows, columns].permute(0, 3, 1, 2)
    flip = torch.rand(n, 1, 1, 1, device=images.device) < 0.5
    return torch.where(flip, crops.flip(-1), crops)


rc.seed_everything(0)
original = data.train.images[:1].expand(8, -1, -1, -1)
variants = augment(original)
titles = ["original"] + [f"variant {i}" for i in range(1, 9)]
fig, axes = plt.subplots(1, 9, figsize=(11, 1.6))
for ax, image, title in zip(axes, [original[0], *variants], titles, strict=True):
    ax.imshow(image[0].cpu(), cmap="gray")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
plt.show()
assert variants.shape == original.shape and variants.device == original.device
''')
nb.code('''
def train(model: nn.Module, data, epochs: int, lr: float = 0.05, batch_size: int = 128,
          steps_per_epoch: int | None = None, augment_images: bool = False) -> History:
    """SGD (Nesterov momentum, weight decay) with a one-cycle schedule and cross-entropy on logits, per epoch."""
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batches = -(-len(data.train) // batch_size)
    steps = min(steps_per_epoch or batches, batches)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        order = torch.randperm(len(data.train), device=device)[:steps * batch_size]
        for batch in order.split(batch_size):
            images, labels = data.train.images[batch], data.train.labels[batch]
            if augment_images:
                images = augment(images)
            logits = model(images)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(batch)
            correct += (logits.argmax(dim=1) == labels).sum()
        history.train_loss.append(loss_sum.item() / len(order))
        history.train_accuracy.append(correct.item() / len(order))
        test_loss, test_accuracy = evaluate(model, data.test)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_accuracy)
        print(f"epoch {epoch:>2}: train loss {history.train_loss[-1]:.3f}, test accuracy {test_accuracy:.2%}")
    return history
''')
nb.code('''
if device.type == "cuda" and not rc.fast_mode():
    setup = dict(widths=(32, 64, 128), layers=[2, 2, 2], epochs=20, steps_per_epoch=None, augment_images=True)
elif rc.fast_mode():
    setup = dict(widths=(8, 16, 32), layers=[1, 1, 1], epochs=2, steps_per_epoch=15, augment_images=False)
else:
    setup = dict(widths=(16, 32, 64), layers=[1, 1, 1], epochs=3, steps_per_epoch=150, augment_images=False)
print(setup)

rc.seed_everything(0)
small_resnet = ResNet(BasicBlock, setup["layers"], num_classes=num_classes, in_channels=1, small_input=True,
                      widths=setup["widths"])
print(f"{count_parameters(small_resnet):,} parameters")
history = train(small_resnet, data, setup["epochs"], steps_per_epoch=setup["steps_per_epoch"],
                augment_images=setup["augment_images"])
plots.plot_history({"small ResNet": history}, metrics=("train_loss", "test_accuracy"))
plt.show()
''', tags=["uses-exercise"])
nb.code('''
small_resnet.eval()
with torch.no_grad():
    predictions = torch.cat([small_resnet(chunk).argmax(dim=1) for chunk in data.test.images.split(1000)])
test_accuracy = (predictions == data.test.labels).float().mean().item()
print(f"test accuracy: {test_accuracy:.2%} on {len(data.test):,} test images")
if device.type == "cuda" and not rc.fast_mode():
    assert test_accuracy >= 0.93
elif not rc.fast_mode():
    assert test_accuracy >= 0.83
else:  # 30 steps only: well above chance (10%), no more
    assert test_accuracy >= 0.3
''', tags=["uses-exercise"])
nb.md("""
### Where the mistakes are

A **confusion matrix** counts, for every true class (row), which class the model predicted (column); here each row
is in percent of that class's test images, so the diagonal is the share of each class it gets right (its recall).
Once the model has trained for more than the few steps of fast mode, the hardest Fashion-MNIST class is *Shirt*
(the cell asserts it): its outline is shared by T-shirts, pullovers and coats, and the row of Shirt shows which of
them take its images.
""")
nb.code('''
counts = plots.confusion_counts(data.test.labels, predictions, num_classes)
recall = counts.diagonal() / counts.sum(axis=1)
off_diagonal = counts - np.diag(counts.diagonal())
true_class, predicted_class = np.unravel_index(off_diagonal.argmax(), off_diagonal.shape)
print(f"hardest class: {data.class_names[recall.argmin()]} ({recall.min():.0%} recognised)")
print(f"most frequent mistake: {data.class_names[true_class]} taken for {data.class_names[predicted_class]} "
      f"({off_diagonal.max()} times)")
plots.plot_confusion_matrix(data.test.labels, predictions, data.class_names,
                            title=f"small ResNet, test accuracy {test_accuracy:.1%}")
plt.show()
if DATASET == "fashion-mnist" and not rc.fast_mode():
    assert data.class_names[recall.argmin()] == "Shirt"
''', tags=["uses-exercise"])
nb.md("""
And the images behind the numbers: the first test images the model got wrong, with the true class and, after the
arrow, the prediction. Many are hard for people too (a shirt or a pullover? at 28x28 pixels).
""")
nb.code('''
plots.plot_misclassified(data.test.images, data.test.labels, predictions, data.class_names, max_images=16)
plt.show()
''', tags=["uses-exercise"])

# ------------------------------------------------------------------ 8. plain vs residual
nb.md("""
## 8. Plain against residual, at equal depth

Lesson 02 showed the degradation problem: a deeper plain network reaching a *higher* training loss than a
shallower one. Here is the fix, measured, as in He et al.'s own experiment (2015, Fig. 6) in small: two CNNs of
exactly the same layout (the course's `ConvNet`: a 3x3 stem, three stages of five blocks, GAP, linear), one made of
your `BasicBlock`, the other of `PlainBlock`, the same block without its shortcut. Same data, same optimiser (Adam),
same batches, same seed; only the shortcuts differ. We compare the **training** loss: how well each network can fit
the data it sees.
""")
nb.code('''
depths, widths = (5, 5, 5), (8, 16, 32)
if rc.fast_mode():
    epochs, steps = 2, 6
elif device.type == "cuda":
    epochs, steps = 4, 200
else:
    epochs, steps = 4, 50
layers = 1 + 2 * sum(depths) + 1  # stem conv, two convs per block, the final linear layer
comparison_data = replace(data, test=Split(data.test.images[:1000], data.test.labels[:1000]))  # to save time


def seeded_convnet(block: Callable[[int, int, int], nn.Module]) -> ConvNet:
    """The same layout and the same random stream for both networks; only the block differs."""
    rc.seed_everything(0)
    return ConvNet(block, widths=widths, depths=depths)


def train_and_report(name: str, net: nn.Module) -> History:
    """Adam (learning rate 0.003), batches of 64, the same batches for both networks."""
    history = fit(net, comparison_data, epochs=epochs, max_steps_per_epoch=steps, batch_size=64, lr=3e-3,
                  progress=False)
    print(f"{name:>8} ({layers} layers, {count_parameters(net):,} parameters): training loss "
          f"{history.train_loss[-1]:.3f}, test accuracy {history.test_accuracy[-1]:.2%}")
    return history


nets = {"plain": seeded_convnet(PlainBlock), "residual": seeded_convnet(BasicBlock)}
print(f"each 'epoch' below is {steps} batches of 64 images")
''', tags=["uses-exercise"])
nb.code('''
histories = {"plain": train_and_report("plain", nets["plain"])}
''', tags=["uses-exercise"])
nb.code('''
histories["residual"] = train_and_report("residual", nets["residual"])
plots.plot_history(histories, metrics=("train_loss", "test_accuracy"))
plt.show()
''', tags=["uses-exercise"])
nb.code('''
assert histories["residual"].train_loss[-1] < 0.8 * histories["plain"].train_loss[-1]
''', tags=["uses-exercise"])
nb.md("""
The two networks have the same depth and almost the same parameters (the residual one adds two 1x1 projections),
yet the plain one fits its own training data worse: an optimisation problem, not overfitting. With the shortcuts,
the identity is easy for every block to represent (its branch only has to output zero) and the gradient reaches the
early layers directly (lesson 03).

## Summary

- A **stage** stacks blocks of one width; only its first block takes the stride and changes the channels.
- A shortcut can span a whole stage (`relu(stage(x) + shortcut(x))`, projected when the shape changes); ResNet
  itself keeps one shortcut per block.
- **Global average pooling** makes the head small (for ResNet-18 and 10 classes, 5,130 parameters instead of
  250,890 after flattening), accepts any image size, and makes the logits less sensitive to shifts (not immune:
  strides alias).
- `ResNet(BasicBlock, [2, 2, 2, 2])` built from your pieces has torchvision's 11,689,512 parameters and, with
  torchvision's weights, computes the same outputs.
- `nn.CrossEntropyLoss` takes logits; Adam trains the article's model; SGD with momentum and a one-cycle schedule
  (plus augmentation on a GPU) train the small ResNet of section 7.
- At equal depth, the residual CNN reaches a lower training loss than the plain one.

## Going further

- He, Zhang, Ren & Sun (2015), *Deep Residual Learning for Image Recognition*: Table 1 (the ImageNet ResNets),
  section 4.2 and Fig. 6 (CIFAR-10, plain against residual up to 110 layers, and 1202).
- ResNet-50 and deeper use lesson 04's `Bottleneck`, whose output has `4 * mid_channels` channels. Extend your
  `ResNet` to handle it (torchvision does it with `block.expansion`) and compare with `torchvision.models.resnet50`.
- Shift invariance: Zhang (2019), *Making Convolutional Networks Shift-Invariant Again*, blurs before every stride;
  try it on section 4's measurement.
- Train section 7's model with Adam instead of SGD, or without augmentation, and compare the test accuracy.
- Next, lesson 06: ResNeXt (grouped convolutions in the block) and DenseNet, which concatenates instead of adding.
""")

nb.save(f"/work/main/solutions/{SLUG}/{SLUG}.ipynb")
