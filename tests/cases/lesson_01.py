"""Grading case of lesson 01."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="01_vanishing_gradients",
    full_marks=5,
    mistakes={
        "l01-sigmoid-itself": (
            (Mistake("sigmoid-derivative", "return s * (1 - s)", "return s"),),
            frozenset({"check-sigmoid-derivative"}),
        ),
        "l01-bias-norms-too": (
            (Mistake("weight-grad-norms",
                     "[layer.weight.grad.norm().item() for layer in model.modules() if isinstance(layer, nn.Linear)]",
                     "[p.grad.norm().item() for p in model.parameters()]"),),
            frozenset({"check-weight-grad-norms"}),
        ),
    },
)
