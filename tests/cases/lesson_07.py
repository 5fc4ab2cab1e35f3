"""Grading case of lesson 06."""

from cases import LessonCase, Mistake

GROUPS_MIXUP = Mistake("resnext-block", "groups=cardinality,", "groups=width // cardinality,")
DENSE_ADDS = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)", "return x + new_features")
DENSE_NEW_FIRST = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)",
                          "return torch.cat([new_features, x], dim=1)")
TRANSITION_NO_POOL = Mistake("transition", "            nn.AvgPool2d(2),\n", "")

CASE = LessonCase(
    assignment="06_resnext_densenet",
    full_marks=19,
    mistakes={
        # caught twice: by the parameter count and by the 3x3 conv's groups
        "l06-groups-mixup": ((GROUPS_MIXUP,), frozenset({"resnext-parameters", "resnext-groups"})),
        # a DenseBlock made of the broken layer breaks too; the parameter counts stay right
        "l06-dense-adds": ((DENSE_ADDS,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l06-dense-new-first": ((DENSE_NEW_FIRST,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l06-transition-no-pool": ((TRANSITION_NO_POOL,), frozenset({"transition-downsampling"})),
    },
)
