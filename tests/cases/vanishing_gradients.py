"""Grading case of lesson 01."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="01_vanishing_gradients",
    full_marks=8,
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
        # a drop-in: the course's gradient_profile runs a backward pass of its own (the check's "read only" says so)
        "l01-drop-in-gradient-profile": (
            (Mistake("weight-grad-norms", "return [layer.weight.grad.norm().item() for layer in model.modules() "
                                          "if isinstance(layer, nn.Linear)]", """from residual_course import gradients

    first = next(layer for layer in model.modules() if isinstance(layer, nn.Linear))
    inputs = torch.randn(8, first.in_features, device=first.weight.device)
    return gradients.gradient_profile(model, inputs, torch.zeros(8, dtype=torch.long, device=inputs.device))"""),),
            frozenset({"check-weight-grad-norms"}),
        ),
        # the slopes without the weights' gain; and 20 crossings counted between 20 layers (there are 19)
        "l01-decay-slopes-only": (
            (Mistake("predicted-decay", "predicted_decay = 0.25 * weight_gain", "predicted_decay = 0.25"),
             Mistake("measured-decay", "** (1 / (len(signal) - 1))", "** (1 / len(signal))")),
            frozenset({"decay-predicted", "decay-measured"}),
        ),
        # the ReLU's mask taken to halve the norm (it multiplies it by sqrt(1/2): squares add)
        "l01-relu-factor-halved-norm": (
            (Mistake("predicted-relu-factor", "predicted_relu_factor = kaiming_gain * 0.5**0.5",
                     "predicted_relu_factor = kaiming_gain * 0.5"),),
            frozenset({"relu-factor-predicted"}),
        ),
    },
)
