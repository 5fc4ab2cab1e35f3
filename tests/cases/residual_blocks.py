"""Grading case of lesson 05."""

from cases import LessonCase, Mistake

RELU_BEFORE_ADD = Mistake("basic-block", """        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))""", """        out = self.relu(self.bn2(self.conv2(out)))
        return out + self.shortcut(x)""")

NO_PROJECTION = Mistake("basic-block", """        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
""", "")

BOTTLENECK_STRIDE_IN_FIRST_1X1 = Mistake("bottleneck", "nn.Conv2d(in_channels, mid_channels, 1, bias=False),",
                                         "nn.Conv2d(in_channels, mid_channels, 1, stride=stride, bias=False),")
BOTTLENECK_STRIDE_NOT_IN_3X3 = Mistake(
    "bottleneck", "nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)",
    "nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False)")

PREACT_RELU_AFTER_ADD = Mistake("preact-block", "return self.branch(x) + self.shortcut(x)",
                                "return torch.relu(self.branch(x) + self.shortcut(x))")

# A drop-in: torchvision's block behind the course's interface. It passes every behaviour check; the ready-made rule
# refuses it in all four BasicBlock cells.
TORCHVISION_BASIC_BLOCK = Mistake("basic-block", "class BasicBlock(nn.Module):", """\
from torchvision.models import resnet


class BasicBlock(resnet.BasicBlock):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        projection = None
        if stride != 1 or in_channels != out_channels:
            projection = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out_channels))
        super().__init__(in_channels, out_channels, stride, downsample=projection)


class MyFirstTry(nn.Module):""")

CASE = LessonCase(
    assignment="05_residual_blocks",
    full_marks=20,
    mistakes={
        "l05-relu-before-add": ((RELU_BEFORE_ADD,), frozenset({"basic-block-relu-after-add"})),
        "l05-no-projection": ((NO_PROJECTION,), frozenset({"basic-block-projection"})),
        "l05-bottleneck-v1-stride": ((BOTTLENECK_STRIDE_IN_FIRST_1X1, BOTTLENECK_STRIDE_NOT_IN_3X3),
                                     frozenset({"bottleneck-projection"})),
        "l05-drop-in-torchvision": ((TORCHVISION_BASIC_BLOCK,), frozenset({
            "basic-block-identity", "basic-block-relu-after-add", "basic-block-projection", "basic-block-batchnorm"})),
        "l05-preact-relu-after-add": ((PREACT_RELU_AFTER_ADD,), frozenset({"preact-no-relu-after-add"})),
        # a centred sum is negative half the time, forgetting that the stream x >= 0; and a stream measured without
        # the previous block's ReLU (a standard normal), which the block cuts half of
        "l05-kept-half": (
            (Mistake("predicted-kept", "predicted_kept_fraction = 0.5 * 0.5 + 0.5 * (1 - 0.5 * 0.5)",
                     "predicted_kept_fraction = 0.5"),
             Mistake("measured-kept", "stream = torch.relu(torch.randn(64, 16, 8, 8, device=device))",
                     "stream = torch.randn(64, 16, 8, 8, device=device)")),
            frozenset({"kept-predicted", "kept-measured"}),
        ),
    },
)
