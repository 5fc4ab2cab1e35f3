"""Grading case of lesson 08."""

from cases import LessonCase, Mistake

GROUPS_MIXUP = Mistake("resnext-block", "groups=cardinality,", "groups=width // cardinality,")
DENSE_ADDS = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)", "return x + new_features")
DENSE_NEW_FIRST = Mistake("dense-layer", "return torch.cat([x, new_features], dim=1)",
                          "return torch.cat([new_features, x], dim=1)")
TRANSITION_NO_POOL = Mistake("transition", "            nn.AvgPool2d(2),\n", "")

CASE = LessonCase(
    assignment="08_resnext_densenet",
    full_marks=21,
    mistakes={
        # caught twice: by the parameter count and by the 3x3 conv's groups
        "l08-groups-mixup": ((GROUPS_MIXUP,), frozenset({"resnext-parameters", "resnext-groups"})),
        # a DenseBlock made of the broken layer breaks too; the parameter counts stay right
        "l08-dense-adds": ((DENSE_ADDS,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l08-dense-new-first": ((DENSE_NEW_FIRST,), frozenset({"dense-layer-concat", "dense-block-growth"})),
        "l08-transition-no-pool": ((TRANSITION_NO_POOL,), frozenset({"transition-downsampling"})),
        # the same mix-up in the prediction (4 groups of 32 channels); and kernel_size compared with an int, which
        # never equals the tuple (3, 3): a share of 0
        "l08-grouped-share-mixup": (
            (Mistake("predicted-grouped-share", "9 * 128 * 128 // 32", "9 * 128 * 128 // 4"),
             Mistake("measured-grouped-share", "m.kernel_size == (3, 3)", "m.kernel_size == 3")),
            frozenset({"grouped-share-predicted", "grouped-share-measured"}),
        ),
    },
)
