"""Grading case of lesson 00."""

from cases import LessonCase, Mistake

CASE = LessonCase(
    assignment="00_pytorch_refresher",
    full_marks=20,
    mistakes={
        "l00-softmax-output": (
            (Mistake("mlp", "        return self.layers(x)", "        return torch.softmax(self.layers(x), dim=1)"),),
            frozenset({"mlp-logits"}),
        ),
        "l00-no-relu": (
            (Mistake("mlp", "layers += [nn.Linear(in_features, width), nn.ReLU()]",
                     "layers += [nn.Linear(in_features, width)]"),),
            frozenset({"mlp-layers"}),
        ),
        "l00-tensor-loss": (
            (Mistake("train-step", "    return loss.item()", "    return loss"),),
            frozenset({"train-step-loss"}),
        ),
        "l00-no-zero-grad": (
            (Mistake("train-step", "    optimizer.zero_grad()\n", ""),),
            frozenset({"train-step-zero-grad"}),
        ),
        "l00-naive-cross-entropy": (
            (Mistake("cross-entropy", """    true_logits = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - true_logits).mean()""",
                     """    probabilities = torch.softmax(logits, dim=1)
    return -torch.log(probabilities[torch.arange(len(labels)), labels]).mean()"""),),
            frozenset({"cross-entropy-stable"}),
        ),
        # the mean of the batch means: the last, smaller batch counts as much as a full one
        "l00-epoch-unweighted": (
            (Mistake("train-epoch", "labels[batch]) * len(batch)", "labels[batch])"),
             Mistake("train-epoch", "return total / len(images)", "return total / len(order.split(batch_size))")),
            frozenset({"train-epoch-mean"}),
        ),
        # loss taken for accuracy, in the prediction (chance is 1/10) and in the measurement
        "l00-untrained-loss-as-chance": (
            (Mistake("predicted-initial-loss", "predicted_initial_loss = math.log(10)", "predicted_initial_loss = 0.1"),
             Mistake("initial-loss",
                     "cross_entropy_from_logits(untrained(data.train.images[:256]), data.train.labels[:256]).item()",
                     "(untrained(data.train.images[:256]).argmax(dim=1) == data.train.labels[:256]).float().mean()"
                     ".item()")),
            frozenset({"initial-loss-predicted", "initial-loss-measured"}),
        ),
    },
)
