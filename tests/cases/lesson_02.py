"""Grading case of lesson 02."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="02_degradation",
    full_marks=8,
    mistakes={
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
        "l02-diagnose-by-test-loss": (
            (Mistake("diagnose", "if deep.train_loss[-1] > shallow.train_loss[-1]:",
                     "if deep.test_loss[-1] > shallow.test_loss[-1]:"),),
            frozenset({"diagnose-overfitting"}),
        ),
    },
)
