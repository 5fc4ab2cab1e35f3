"""Grading case of lesson 02."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="02_degradation",
    full_marks=15,
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
        "l02-diagnose-by-test-loss": (
            (Mistake("diagnose", "if deep.train_loss[-1] > shallow.train_loss[-1]:",
                     "if deep.test_loss[-1] > shallow.test_loss[-1]:"),),
            frozenset({"diagnose-overfitting"}),
        ),
        # "gradients vanish in deep networks", carried over from lesson 01; and the ratio taken upside down
        "l02-predicts-it-shrinks": (
            (Mistake("predicted-direction", 'predicted_direction = "grows"', 'predicted_direction = "shrinks"'),
             Mistake("measured-factor", "(deep_signal[0] / deep_signal[-1])", "(deep_signal[-1] / deep_signal[0])")),
            frozenset({"growth-predicted", "growth-measured"}),
        ),
    },
)
