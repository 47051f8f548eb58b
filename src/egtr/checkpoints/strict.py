"""Strict loading: a state dict must fit the model exactly, or the error lists every difference."""

from __future__ import annotations

from torch import Tensor

from egtr.models.egtr import EGTR


def load_state_strictly(
    model: EGTR, state: dict[str, Tensor], source: str, ignore_prefixes: tuple = (), whole: bool = True
) -> None:
    """Load `state` into `model`; raise ValueError listing missing, unexpected and mis-shaped keys.

    Keys starting with one of `ignore_prefixes` may be missing (they keep their initialization).
    `whole=False`: `state` is a part of weights already checked as a whole (`check_fit` on the file's
    shapes), so only its own names and shapes are checked.
    """
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{source}: the weights are not a mapping of names to tensors")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    check_fit(model, shapes, source, ignore_prefixes if whole else ("",))
    model.load_state_dict(state, strict=False)


def check_fit(
    model: EGTR, shapes: dict[str, tuple[int, ...]], source: str, ignore_prefixes: tuple = ()
) -> None:
    """Raise ValueError listing the missing, unexpected and mis-shaped names of `shapes` (name -> shape)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(k for k in set(expected) - set(shapes) if not k.startswith(ignore_prefixes))
    unexpected = sorted(set(shapes) - set(expected))
    mismatched = sorted(
        f"{k} {shapes[k]} vs {expected[k]}" for k in set(shapes) & set(expected) if shapes[k] != expected[k]
    )
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped (file vs model)", mismatched),
    ):
        if keys:
            shown = ", ".join(keys[:10]) + (f", … ({len(keys)} in all)" if len(keys) > 10 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ValueError(f"{source}: weights do not fit the model; " + "; ".join(problems))
