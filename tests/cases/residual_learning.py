"""Grading case of lesson 03."""

from cases import LessonCase, Mistake

SUM_THEN_RELU = "return torch.relu(x + self.branch(x))"
RELU_BEFORE_ADD = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(self.branch(x)) + x")
NO_SHORTCUT = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(self.branch(x))")
DETACHED_SHORTCUT = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(x.detach() + self.branch(x))")
NO_LAST_MASK = Mistake("residual-jacobian", "return (outer > 0).to(x.dtype)[:, None] * (identity + branch)",
                       "return identity + branch")

CASE = LessonCase(
    assignment="03_residual_learning",
    full_marks=10,
    mistakes={
        "l03-relu-before-add": ((RELU_BEFORE_ADD,), frozenset({"block-identity"})),
        "l03-no-shortcut": ((NO_SHORTCUT,), frozenset({"block-identity", "block-gradient"})),
        "l03-detached-shortcut": ((DETACHED_SHORTCUT,), frozenset({"block-gradient"})),
        # I + J_F without the ReLU after the addition: right where every unit is on, wrong anywhere else
        "l03-jacobian-no-mask": ((NO_LAST_MASK,), frozenset({"jacobian-mask"})),
        # "copying is the easiest task there is"; and the raw error stored instead of its fraction of the baseline
        "l03-plain-copies-it": (
            (Mistake("predicted-plain-identity", "predicted_plain_fraction = 1.0", "predicted_plain_fraction = 0.1"),
             Mistake("measured-plain-fraction", " / studies.IDENTITY_BASELINE", "")),
            frozenset({"identity-predicted", "identity-measured"}),
        ),
    },
)
