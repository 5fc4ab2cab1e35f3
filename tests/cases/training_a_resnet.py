"""Grading case of lesson 07."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="07_training_a_resnet",
    full_marks=5,
    mistakes={
        # the projections' BatchNorms forgotten: 2,560 instead of 2,752
        "l07-extra-without-batchnorm": (
            (Mistake("predicted-extra", "predicted_extra_parameters = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)",
                     "predicted_extra_parameters = 16 * 32 + 32 * 64"),),
            frozenset({"extra-predicted"}),
        ),
        # the residual network's whole count, not the difference
        "l07-extra-measures-the-total": (
            (Mistake("measured-extra",
                     "measured_extra_parameters = (count_parameters(CifarStyleNet(3, residual=True))\n"
                     "                             - count_parameters(CifarStyleNet(3, residual=False)))",
                     "measured_extra_parameters = count_parameters(CifarStyleNet(3, residual=True))"),),
            frozenset({"extra-measured"}),
        ),
        # the average deletion instead of the worst
        "l07-kept-average": (
            (Mistake("accuracy-kept",
                     "return min(accuracy([b for i, b in enumerate(blocks) if i != index]) for index in indices) "
                     "/ whole",
                     "cut = [accuracy([b for i, b in enumerate(blocks) if i != index]) for index in indices]\n"
                     "    return sum(cut) / len(cut) / whole"),),
            frozenset({"accuracy-kept-check"}),
        ),
    },
)
