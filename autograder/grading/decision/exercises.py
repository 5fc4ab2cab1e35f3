"""What each block exercise's answer may compute: what a block needs, and what its usual mistakes need; nothing that
could tell a grading probe from real use.

A graph that compares or selects (eq, where, masked_fill, an index taken from the data), reduces (sum, mean, max),
multiplies two computed tensors (a gate), or reads its own weights as data could tell a probe from real use (all
weights at zero, a known input, a batch of four) and answer only the probe correctly. So the graph of a block
exercise is refused unless:

- every operation is a layer (conv2d with any padding, linear, BatchNorm, pooling, concatenation), an activation
  (ReLU in any spelling: relu, relu_, clamp, clamp_min, threshold; or a wrong one: sigmoid, tanh...), an addition
  or subtraction, a scaling by a constant, a change of shape, or a no-op (clone, detach, dropout);
- its parameters and buffers are read only as what they are: a conv's or linear layer's weight and bias, a
  BatchNorm's weight, bias and running statistics (and BatchNorm's own count of batches, incremented by one);
- it writes into none of its inputs, and holds no constant tensors of its own.

These operations compose to piecewise-smooth functions whose only weights are the layers': such a graph computes
one function of its input, which the checks measure on salted inputs and random weights. Mistakes stay gradable
(a ReLU before the addition, a detached shortcut, a sigmoid); only what no block needs goes to a person.
Exercises not named here (an MLP, a training step, a whole ResNet) keep graphs.ALLOWED_OPS.
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.grading.decision.graphs import TRUSTED_CALL, GraphError

LAYERS = ("conv2d.default", "conv2d.padding", "linear.default", "batch_norm.default", "cat.default",
          "avg_pool2d.default", "max_pool2d.default", "adaptive_avg_pool2d.default")
ACTIVATIONS = ("relu.default", "relu_.default", "clamp_min.default", "clamp.default", "threshold.default",
               "sigmoid.default", "tanh.default", "gelu.default", "silu.default", "leaky_relu.default",
               "hardtanh.default", "elu.default")
SUMS = ("add.Tensor", "add_.Tensor", "sub.Tensor", "add.Scalar", "sub.Scalar", "rsub.Scalar", "mul.Scalar",
        "div.Scalar", "neg.default")
SHAPES = ("view.default", "reshape.default", "flatten.using_ints", "permute.default", "transpose.int",
          "unsqueeze.default", "squeeze.dim", "expand.default")
NO_OPS = ("clone.default", "contiguous.default", "alias.default", "detach.default", "dropout.default",
          "native_dropout.default")
# where a layer reads its weights: operation -> argument positions that may be a parameter or buffer
WEIGHT_SLOTS = {"aten::conv2d.default": (1, 2), "aten::conv2d.padding": (1, 2), "aten::linear.default": (1, 2),
                "aten::batch_norm.default": (1, 2, 3, 4)}
BY_A_NUMBER = ("aten::mul.Tensor", "aten::div.Tensor")  # allowed when one side is a number (torch.export's spelling)
IN_PLACE = ("aten::relu_.default", "aten::add_.Tensor")  # the in-place operations of the list above
ALIASES = tuple(f"aten::{op}" for op in (*SHAPES, "alias.default", "contiguous.default", "detach.default"))  # views


@dataclass(frozen=True)
class Exercise:
    """The operations a correct answer of one exercise needs."""

    operations: frozenset[str]

    def check(self, spec: dict, name: str) -> None:
        """Refuse a graph that computes more than the exercise needs (GraphError, with the reason)."""
        kinds = {entry["name"]: entry for entry in spec["placeholders"]}
        for entry in spec["placeholders"]:
            if entry["kind"] == "constant":
                raise GraphError(f"{name} holds a constant tensor ({entry['target']}), which a {name} does not need")
        inputs = {entry["name"] for entry in spec["placeholders"] if entry["kind"] == "input"}
        for node in spec["nodes"]:
            target = node["target"]
            if target not in self.operations and not (target in BY_A_NUMBER and _by_a_number(node["args"])):
                raise GraphError(f"{name} runs {target}, which a {name} does not need")
            first = node["args"][0] if node["args"] else None
            if isinstance(first, dict) and first.get("node") in inputs:
                if target in IN_PLACE:
                    raise GraphError(f"{name} writes into its input ({target}): compute a new tensor instead")
                if target in ALIASES:  # the same memory as the input under another name
                    inputs.add(node["name"])
            arguments = [*enumerate(node["args"]), *((None, value) for value in node["kwargs"].values())]
            for position, value in arguments:
                for item in value if isinstance(value, list) else [value]:  # cat's tensors come as a list
                    read = kinds.get(item["node"]) if isinstance(item, dict) and "node" in item else None
                    if read is None or read["kind"] not in ("parameter", "buffer"):
                        continue
                    in_its_slot = position in WEIGHT_SLOTS.get(target, ()) and not isinstance(value, list)
                    if not in_its_slot and not _counts_batches(read, target, node["args"]):
                        raise GraphError(f"{name} reads its {read['kind']} {read['target']} in {target}, not as a "
                                         "layer's weight")


def _by_a_number(args: list) -> bool:
    """A product or quotient with a plain number (`out * 1.0`), which scales; not of two computed tensors (a gate)."""
    return len(args) == 2 and any(isinstance(arg, (int, float)) and not isinstance(arg, bool) for arg in args)


def _counts_batches(read: dict, target: str, args: list) -> bool:
    """BatchNorm's own bookkeeping: num_batches_tracked += 1 in train mode."""
    return read["kind"] == "buffer" and read["target"].endswith("num_batches_tracked") and target == \
        "aten::add_.Tensor" and args[1:] == [1]


BLOCK = Exercise(frozenset({TRUSTED_CALL, *(f"aten::{op}" for op in (*LAYERS, *ACTIVATIONS, *SUMS, *SHAPES,
                                                                      *NO_OPS))}))
EXERCISES: dict[str, Exercise] = dict.fromkeys(("BasicBlock", "Bottleneck", "PreActBlock", "ResNeXtBlock",
                                                 "ResidualMLPBlock", "DenseLayer", "DenseBlock", "Transition"), BLOCK)
