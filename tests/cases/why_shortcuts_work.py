"""Grading case of lesson 04."""

from cases import LessonCase, Mistake

# each lag divided by its own number of pairs (the mean of the products) and r_0 by the mean square: r_1 moves by
# 1/255 only, so the lesson's measurement still agrees; the definition does not
PER_LAG_MEAN = Mistake("autocorrelation", ".sum() for k in range(max_lag + 1)]) / energy",
                       ".mean() for k in range(max_lag + 1)]) / (energy / len(g))")
WHOLE_TENSOR_NORM = Mistake("filter-direction", "scale = p.detach().flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)",
                            "scale = p.detach().norm() / d.norm()")
SUBPATHS = Mistake("path-gradient", "torch.relu(h.detach() + branch(h)) if index in path",
                   "torch.relu(h + branch(h)) if index in path")

CASE = LessonCase(
    assignment="04_why_shortcuts_work",
    full_marks=13,
    mistakes={
        "l04-acf-per-lag": ((PER_LAG_MEAN,), frozenset({"acf-definition"})),
        # "a residual network is as shattered as a plain one"; and the plain network measured instead
        "l04-lag1-white-noise": (
            (Mistake("predicted-residual-lag1", "predicted_residual_lag1 = 0.6", "predicted_residual_lag1 = 0.05"),
             Mistake("measured-residual-lag1", "shattered.network(50, skip=True, seed=seed)",
                     "shattered.network(50, skip=False, seed=seed)")),
            frozenset({"lag1-predicted", "lag1-measured"}),
        ),
        "l04-direction-whole-tensor": ((WHOLE_TENSOR_NORM,), frozenset({"direction-norms"})),
        # "the shortcut keeps the variance"; and the growth over all 50 blocks stored, not per block
        "l04-growth-one": (
            (Mistake("predicted-growth", "predicted_growth_per_block = 2.0", "predicted_growth_per_block = 1.0"),
             Mistake("measured-growth", " ** (1 / 50)", "")),
            frozenset({"growth-predicted", "growth-measured"}),
        ),
        "l04-path-subpaths": ((SUBPATHS,), frozenset({"path-one", "path-sum"})),
    },
)
