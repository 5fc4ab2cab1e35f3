"""Grading case of lesson 06."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="06_training_a_resnet",
    full_marks=3,
    mistakes={
        # the measurement says the residual network keeps more of its accuracy
        "l06-predicts-plain": ((Mistake("prediction", 'prediction = "residual"', 'prediction = "plain"'),),
                               frozenset({"prediction-check"})),
        # surgery in place: the trained network given to it loses a block too
        "l06-delete-in-place": (
            (Mistake("delete-block",
                     "return nn.Sequential(*(block for position, block in enumerate(blocks) if position != index))",
                     "del blocks[index]\n    return blocks"),),
            frozenset({"delete-block-check"}),
        ),
    },
)
