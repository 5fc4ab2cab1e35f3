"""Grading case of lesson 08.

The accuracy bands were measured on a 2-core CPU in fast mode (two epochs of 30 steps): the solution reaches 0.767 on
the test split, the over-budget and shortcut-free variants about 0.77, and the softmax variant 0.675 (below the
0.70 band, above the 0.60 one).
"""

from cases import LessonCase, Mistake

OVER_BUDGET = Mistake("my-resnet", "widths = (16, 32, 64)", "widths = (24, 48, 96)")
SOFTMAX_OUTPUT = Mistake("my-resnet", "return self.head(x)", "return torch.softmax(self.head(x), dim=1)")
NO_SHORTCUT = Mistake("my-resnet", "x = torch.relu(branch(x) + self.shortcuts[index](x)) if self.shortcuts else",
                      "x = torch.relu(branch(x)) if True else")
# the ablation's argument added to the constructor but never used: MyResNet(shortcuts=False) keeps its shortcuts
ABLATION_IGNORES_ITS_ARGUMENT = Mistake("my-resnet", "            if shortcuts:\n",
                                        "            if True:  # shortcuts, always\n")
# the training accuracy (the running mean over the last epoch) reported as the validation accuracy
ABLATION_TRAINING_ACCURACY = Mistake("ablation", "**GRADING_RECIPE).test_accuracy[-1]",
                                     "**GRADING_RECIPE).train_accuracy[-1]")

CASE = LessonCase(
    assignment="08_capstone",
    full_marks=17,
    mistakes={
        "l08-over-budget": ((OVER_BUDGET,), frozenset({"capstone-budget"})),
        "l08-softmax-output": ((SOFTMAX_OUTPUT,), frozenset({"capstone-logits", "capstone-accuracy-70"})),
        "l08-no-shortcut": ((NO_SHORTCUT,), frozenset({"capstone-shortcut"})),
        "l08-ablation-ignores-its-argument": ((ABLATION_IGNORES_ITS_ARGUMENT,), frozenset({"capstone-ablation-model"})),
        "l08-ablation-training-accuracy": ((ABLATION_TRAINING_ACCURACY,), frozenset({"capstone-ablation-measured"})),
    },
)
