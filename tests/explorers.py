"""Move every control of an explorer, as a learner does, and see whether its image changed. The same code runs in
this interpreter (ipywidgets 8, tests/test_widgets.py) and inside the Colab-like kernel (ipywidgets 7.7,
tests/test_colab_like.py sends this module's source there): it uses only what both ipywidgets offer."""

from __future__ import annotations


def nudge(control: object) -> None:
    """One notch, as a learner moves it: a slider one step (back from its end), a dropdown to its next option, a
    checkbox over."""
    if hasattr(control, "options"):
        control.index = (control.index + 1) % len(control.options)
    elif isinstance(control.value, bool):
        control.value = not control.value
    elif hasattr(control, "step"):
        up = control.value + control.step
        control.value = up if up <= control.max else control.value - control.step
    else:
        raise TypeError(f"{type(control).__name__} {control.description!r}: tests/explorers.py does not know how to "
                        "move this kind of control; teach nudge() how a learner moves it")


def drive(explorer: object) -> dict[str, bool]:
    """For each control, by its description: whether moving it one notch changed the explorer's image."""
    changed = {}
    for control in explorer.controls:
        before = bytes(explorer.plot.value)
        nudge(control)
        changed[control.description] = bytes(explorer.plot.value) != before
    return changed
