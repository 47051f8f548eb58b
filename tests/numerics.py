"""Comparing a faster path with the path it replaces: equal up to float32 rounding."""

import torch


def assert_close_to_scale(
    got: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-5, msg: str = ""
) -> None:
    """max |got - expected| <= tolerance * max |expected|: the rounding of a reordered float32 computation
    grows with the magnitude of the values (random-weight networks produce large ones)."""
    assert got.shape == expected.shape, f"{msg}: shapes {tuple(got.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().item()
    error = (got - expected).abs().max().item()
    assert error <= tolerance * max(scale, 1e-30), (
        f"{msg}: max |difference| {error:.3g} > {tolerance} x {scale:.3g}"
    )
