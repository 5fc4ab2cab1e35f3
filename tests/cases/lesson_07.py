"""Grading case of lesson 07."""

from cases import LessonCase, Mistake

GROUPS_MIXUP = Mistake("resnext-block", "groups=cardinality,", "groups=width // cardinality,")
DENSE_ADDS = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)", "return x + new_features")
DENSE_NEW_FIRST = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)",
                          "return torch.cat([new_features, x], dim=1)")
TRANSITION_NO_POOL = Mistake("transition", "            nn.AvgPool2d(2),\n", "")

CASE = LessonCase(
    assignment="07_resnext_densenet",
    full_marks=19,
    mistakes={
        # caught twice: by the parameter count and by the 3x3 conv's groups
        "l07-groups-mixup": ((GROUPS_MIXUP,), frozenset({"resnext-parameters", "resnext-groups"})),
        # a DenseBlock made of the broken layer breaks too; the parameter counts stay right
        "l07-dense-adds": ((DENSE_ADDS,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l07-dense-new-first": ((DENSE_NEW_FIRST,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l07-transition-no-pool": ((TRANSITION_NO_POOL,), frozenset({"transition-downsampling"})),
    },
)
