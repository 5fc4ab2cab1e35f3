"""Grading case of lesson 08.

The accuracy bands were measured on a 2-core CPU in fast mode (two epochs of 30 steps): the solution (ResNet-20's
layout at half width) reaches 0.739 on the test split, the softmax variant 0.674 (below the 0.70 band, above the 0.60
one), and the variant whose forward pass skips the shortcuts 0.568: at this depth the shortcuts are worth two bands.
The over-budget variant is ResNet-32's layout (five blocks a stage, 117,474 parameters): 0.745 with one torch thread
and 0.736 with two on an AMD EPYC, clear of the 0.70 band. (The 1.5-times-wider variant it replaces reached 0.737 with
two threads but 0.679 with one, the grader's, on that machine: it crossed a band from one CPU to another.)
"""

from cases import LessonCase, Mistake

OVER_BUDGET = Mistake("my-resnet", "widths, blocks_per_stage = (8, 16, 32), 3",
                      "widths, blocks_per_stage = (8, 16, 32), 5")
SOFTMAX_OUTPUT = Mistake("my-resnet", "return self.head(x)", "return torch.softmax(self.head(x), dim=1)")
NO_SHORTCUT = Mistake("my-resnet", "x = torch.relu(branch(x) + self.shortcuts[index](x)) if self.shortcuts else",
                      "x = torch.relu(branch(x)) if True else")
# the ablation's argument added to the constructor but never used: MyResNet(shortcuts=False) keeps its shortcuts
ABLATION_IGNORES_ITS_ARGUMENT = Mistake("my-resnet", "            if shortcuts:  #",
                                        "            if True:  # shortcuts, always;")
# the training accuracy (the running mean over the last epoch) reported as the validation accuracy
ABLATION_TRAINING_ACCURACY = Mistake("ablation", "**GRADING_RECIPE).test_accuracy[-1]",
                                     "**GRADING_RECIPE).train_accuracy[-1]")

CASE = LessonCase(
    assignment="08_capstone",
    full_marks=18,
    mistakes={
        "l08-over-budget": ((OVER_BUDGET,), frozenset({"capstone-budget"})),
        "l08-softmax-output": ((SOFTMAX_OUTPUT,), frozenset({"capstone-logits", "capstone-accuracy-70"})),
        # (its ablation compares two plain networks whose random starts differ, as MyResNet(shortcuts=False) builds
        # no projections: 0.601 against 0.455, so the prediction "shortcuts help" still matches its numbers)
        "l08-no-shortcut": ((NO_SHORTCUT,), frozenset({"capstone-shortcut", "capstone-accuracy-60",
                                                        "capstone-accuracy-70"})),
        "l08-ablation-ignores-its-argument": ((ABLATION_IGNORES_ITS_ARGUMENT,), frozenset({
            "capstone-ablation-model", "capstone-ablation-predicted"})),
        # "a few shortcuts cannot matter much" for a 19-convolution network
        "l08-predicts-no-difference": ((Mistake("predicted-ablation", '"shortcuts help"', '"about the same"'),),
                                       frozenset({"capstone-ablation-predicted"})),
        "l08-ablation-training-accuracy": ((ABLATION_TRAINING_ACCURACY,), frozenset({"capstone-ablation-measured"})),
    },
)
