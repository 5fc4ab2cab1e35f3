"""Grading case of lesson 09.

Measured on a 2-core CPU in fast mode (two epochs of 30 steps) with one torch thread, the grader's at J=2; the bands
are grading_policy.BANDS["fast"]: test-split accuracy 0.35, 0.45, 0.65, and a shortcut gap of 0.08 on the validation
split. The solution (ResNet-20's layout at half width) reaches 0.760 on the test split and loses 0.284 of validation
accuracy without its shortcuts. The softmax variant reaches 0.674 (every accuracy band) and still needs its shortcuts
(0.617 against 0.352): it loses the logits cell only. The variant whose forward pass skips the shortcuts reaches 0.550
(not the top band) and has no shortcut to need. The over-budget variant is ResNet-32's layout (five blocks a stage,
117,474 parameters): 0.761, and a gap of 0.428. The shallow variant (one block a stage, 16, 32 and 64 channels: the
shallow, wide design of the lesson's table) is as accurate (0.765) but does better without its shortcuts (0.774
against 0.733 on the validation split), so it loses the shortcut band and the prediction "shortcuts help".
"""

from cases import LessonCase, Mistake

OVER_BUDGET = Mistake("my-resnet", "widths, blocks_per_stage = (8, 16, 32), 3",
                      "widths, blocks_per_stage = (8, 16, 32), 5")
# "fewer, wider blocks score as well": they do, but then the shortcuts are not needed
TOO_SHALLOW = Mistake("my-resnet", "widths, blocks_per_stage = (8, 16, 32), 3",
                      "widths, blocks_per_stage = (16, 32, 64), 1")
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
    assignment="09_capstone",
    full_marks=21,
    mistakes={
        "l09-over-budget": ((OVER_BUDGET,), frozenset({"capstone-budget"})),
        "l09-too-shallow": ((TOO_SHALLOW,), frozenset({"capstone-shortcuts-needed", "capstone-ablation-predicted"})),
        "l09-softmax-output": ((SOFTMAX_OUTPUT,), frozenset({"capstone-logits"})),
        # (its ablation compares two plain networks whose random starts differ, as MyResNet(shortcuts=False) builds
        # no projections: 0.601 against 0.455, so the prediction "shortcuts help" still matches its numbers; the
        # shortcut band asks for a shortcut first)
        "l09-no-shortcut": ((NO_SHORTCUT,), frozenset({"capstone-shortcut", "capstone-shortcuts-needed",
                                                        "capstone-accuracy-high"})),
        "l09-ablation-ignores-its-argument": ((ABLATION_IGNORES_ITS_ARGUMENT,), frozenset({
            "capstone-ablation-model", "capstone-ablation-predicted", "capstone-shortcuts-needed"})),
        # "a few shortcuts cannot matter much" for a 19-convolution network
        "l09-predicts-no-difference": ((Mistake("predicted-ablation", '"shortcuts help"', '"about the same"'),),
                                       frozenset({"capstone-ablation-predicted"})),
        "l09-ablation-training-accuracy": ((ABLATION_TRAINING_ACCURACY,), frozenset({"capstone-ablation-measured"})),
    },
)
