"""Grading case of lesson 06: each mistake costs only its own exercise's cells, never ResNet's as well."""

from cases import LessonCase, Mistake

STRIDE_IN_EVERY_BLOCK = Mistake("make-stage", "blocks.append(block(out_channels, out_channels, 1))",
                                "blocks.append(block(out_channels, out_channels, stride))")

STAGE_SHORTCUT_NO_PROJECTION = Mistake("stage-shortcut", """        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
""", "")

GAP_HEAD_FLATTENS_WITHOUT_POOLING = Mistake("gap-head", "return self.fc(self.flatten(self.pool(x)))",
                                            "return self.fc(self.flatten(x))")

RESNET_STEM_STRIDE_1 = Mistake("resnet", "nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)",
                               "nn.Conv2d(in_channels, widths[0], 7, stride=1, padding=3, bias=False)")

RESNET_FIRST_STAGE_STRIDE_2 = Mistake("resnet", "stride=1 if index == 0 else 2", "stride=2")

# Lesson 05's mistake in the pasted block: no graded cell of lesson 06 depends on the learner's BasicBlock.
BASIC_BLOCK_RELU_BEFORE_ADD = Mistake("basic-block", """        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))""", """        out = self.relu(self.bn2(self.conv2(out)))
        return out + self.shortcut(x)""")

# A drop-in: the course's ConvNet supplies the stages (its Stage class gives it away in every ResNet cell).
RESNET_FROM_CONVNET = Mistake("resnet", """        stages, channels = [], widths[0]
        for index, (width, num_blocks) in enumerate(zip(widths, layers, strict=True)):
            stages.append(make_stage(block, channels, width, num_blocks, stride=1 if index == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*stages)""", """        from residual_course import convnets

        widths = tuple(widths[:len(layers)])
        self.stages = convnets.ConvNet(block, widths, tuple(layers), in_channels=widths[0]).stages
        channels = widths[-1]""")

CASE = LessonCase(
    assignment="06_building_a_resnet",
    full_marks=21,
    mistakes={
        "l06-stride-in-every-block": ((STRIDE_IN_EVERY_BLOCK,), frozenset({"make-stage-stride"})),
        "l06-stage-shortcut-no-projection": ((STAGE_SHORTCUT_NO_PROJECTION,),
                                             frozenset({"stage-shortcut-projection"})),
        "l06-gap-head-flattens": ((GAP_HEAD_FLATTENS_WITHOUT_POOLING,), frozenset({"gap-head-pools"})),
        "l06-resnet-stem-stride-1": ((RESNET_STEM_STRIDE_1,), frozenset({"resnet-stem"})),
        "l06-resnet-first-stage-stride-2": ((RESNET_FIRST_STAGE_STRIDE_2,), frozenset({"resnet-stages"})),
        "l06-drop-in-convnet": ((RESNET_FROM_CONVNET,), frozenset({
            "resnet-stem", "resnet-stages", "resnet-head-params", "resnet-small-input"})),
        "l06-basic-block-relu-before-add": ((BASIC_BLOCK_RELU_BEFORE_ADD,), frozenset()),
        # four stages, so a quarter each; and the last stage's first block counted as the whole stage
        "l06-share-a-quarter": ((Mistake("predicted-share", "predicted_share = 64 / (1 + 4 + 16 + 64)",
                                         "predicted_share = 1 / 4"),
                                 Mistake("measured-share", "count_parameters(reference_net.layer4)",
                                         "count_parameters(reference_net.layer4[0])")),
                                frozenset({"share-predicted", "share-measured"})),
    },
)
