"""Grading case of lesson 02."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="02_degradation",
    full_marks=18,
    mistakes={
        # running variance kept biased: training mode is right, evaluation after a few batches is not
        "l02-bn-biased-running-var": (
            (Mistake("batch-norm", "self.momentum * x.var(dim=0, unbiased=True)", "self.momentum * var"),),
            frozenset({"batch-norm-eval"}),
        ),
        # batch statistics in evaluation too: one example's output depends on the rest of its batch
        "l02-bn-no-eval-mode": (
            (Mistake("batch-norm", "        if self.training:\n", "        if True:\n"),),
            frozenset({"batch-norm-eval"}),
        ),
        "l02-no-batchnorm": (
            (Mistake("plain-mlp", "layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU()]",
                     "layers += [nn.Linear(in_features, width), nn.ReLU()]"),),
            frozenset({"plain-units"}),
        ),
        "l02-default-init": (
            (Mistake("plain-mlp", """    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
""", ""),),
            frozenset({"plain-init"}),
        ),
        "l02-depth-off-by-one": (
            (Mistake("plain-mlp", "for _ in range(depth - 1):", "for _ in range(depth):"),),
            frozenset({"plain-depth"}),
        ),
        # a drop-in: the course's own builder, which the ready-made rule refuses in every plain_mlp cell
        "l02-drop-in-make-mlp": (
            (Mistake("plain-mlp", "    layers: list[nn.Module] = [nn.Flatten()]\n",
                     """    from residual_course import models

    return models.make_mlp(depth, width, activation="relu", init="kaiming", norm="batch")
    layers: list[nn.Module] = [nn.Flatten()]
"""),),
            frozenset({"plain-depth", "plain-units", "plain-init"}),
        ),
        # one seed decides; the seeds' spread is ignored
        "l02-diagnose-first-seed": (
            (Mistake("diagnose", "if max(deep_train) >= min(shallow_train):  # the ranges overlap: the seeds disagree",
                     "if deep_train[0] < shallow_train[0] and False:"),),
            frozenset({"diagnose-seeds"}),
        ),
        # the inserted BatchNorms left at their defaults: nearly, but not exactly, the identity; and "deeper can only
        # help" carried into the prediction
        "l02-deepen-default-norms": (
            (Mistake("deepen", "            norm.weight.fill_(math.sqrt(1 + norm.eps))", "            pass"),
             Mistake("predicted-copy-ratio", "predicted_copy_ratio = 1.0", "predicted_copy_ratio = 0.5")),
            frozenset({"deepen-function", "copy-ratio-predicted"}),
        ),
    },
)
