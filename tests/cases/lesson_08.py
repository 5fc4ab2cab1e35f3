"""Grading case of lesson 08.

The accuracy bands were measured on a 2-core CPU in fast mode (two epochs of 30 steps): the solution reaches 0.760 on
the held-out images, the over-budget and shortcut-free variants about 0.77, and the softmax variant 0.675 (below the
0.70 band, above the 0.60 one).
"""

from cases import LessonCase, Mistake

OVER_BUDGET = Mistake("my-resnet", "widths = (16, 32, 64)", "widths = (24, 48, 96)")
SOFTMAX_OUTPUT = Mistake("my-resnet", "return self.head(x)", "return torch.softmax(self.head(x), dim=1)")
NO_SHORTCUT = Mistake("my-resnet", "x = torch.relu(branch(x) + shortcut(x))", "x = torch.relu(branch(x))")

CASE = LessonCase(
    assignment="08_capstone",
    full_marks=13,
    mistakes={
        "l08-over-budget": ((OVER_BUDGET,), frozenset({"capstone-budget"})),
        "l08-softmax-output": ((SOFTMAX_OUTPUT,), frozenset({"capstone-logits", "capstone-accuracy-70"})),
        "l08-no-shortcut": ((NO_SHORTCUT,), frozenset({"capstone-shortcut"})),
    },
)
