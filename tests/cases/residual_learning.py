"""Grading case of lesson 03."""

from cases import LessonCase, Mistake

SUM_THEN_RELU = "return torch.relu(x + self.branch(x))"
RELU_BEFORE_ADD = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(self.branch(x)) + x")
NO_SHORTCUT = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(self.branch(x))")
DETACHED_SHORTCUT = Mistake("residual-mlp-block", SUM_THEN_RELU, "return torch.relu(x.detach() + self.branch(x))")
JACOBIAN_TRANSPOSED = Mistake("block-jacobian", "block(v.unsqueeze(0)).squeeze(0), x)",
                              "block(v.unsqueeze(0)).squeeze(0), x).T")

CASE = LessonCase(
    assignment="03_residual_learning",
    full_marks=10,
    mistakes={
        "l03-relu-before-add": ((RELU_BEFORE_ADD,), frozenset({"block-identity"})),
        "l03-no-shortcut": ((NO_SHORTCUT,), frozenset({"block-identity", "block-gradient"})),
        "l03-detached-shortcut": ((DETACHED_SHORTCUT,), frozenset({"block-gradient"})),
        "l03-jacobian-transposed": ((JACOBIAN_TRANSPOSED,), frozenset({"jacobian-reference"})),
        # "copying is the easiest task there is"; and the raw error stored instead of its fraction of the baseline
        "l03-plain-copies-it": (
            (Mistake("predicted-plain-identity", '"barely beats the mean"', '"copies it"'),
             Mistake("measured-plain-fraction", " / studies.IDENTITY_BASELINE", "")),
            frozenset({"identity-predicted", "identity-measured"}),
        ),
    },
)
