"""Multi-scale deformable attention against a slow per-point bilinear reference."""

import math

import pytest
import torch

from egtr.models.deformable_attention import MultiScaleDeformableAttention, multi_scale_deformable_attention


def bilinear_zero_padded(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample image [D,h,w] at normalized (x, y) with align_corners=False and zeros outside."""
    _, height, width = image.shape
    px, py = x * width - 0.5, y * height - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    result = torch.zeros(image.shape[0], dtype=torch.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
            if 0 <= xi < width and 0 <= yi < height:
                result += weight * image[:, yi, xi].double()
    return result


def reference(value, shapes, locations, weights):
    batch, _, heads, head_dim = value.shape
    queries, points = locations.shape[1], locations.shape[4]
    output = torch.zeros(batch, queries, heads, head_dim, dtype=torch.float64)
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    for b in range(batch):
        for q in range(queries):
            for m in range(heads):
                for level, (h, w) in enumerate(shapes):
                    image = value[b, starts[level] : starts[level + 1], m].T.reshape(head_dim, h, w)
                    for p in range(points):
                        x, y = locations[b, q, m, level, p].tolist()
                        output[b, q, m] += weights[b, q, m, level, p] * bilinear_zero_padded(image, x, y)
    return output.reshape(batch, queries, heads * head_dim)


@pytest.mark.parametrize("shapes", [[(5, 7)], [(6, 4), (3, 2), (1, 1)]])
def test_core_matches_per_point_reference(shapes):
    torch.manual_seed(0)
    batch, heads, head_dim, queries, points = 2, 2, 3, 4, 3
    total = sum(h * w for h, w in shapes)
    value = torch.randn(batch, total, heads, head_dim)
    # locations partly outside [0, 1] to exercise zero padding
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2) * 1.4 - 0.2
    weights = torch.rand(batch, queries, heads, len(shapes), points)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    got = multi_scale_deformable_attention(value, shapes, locations, weights)
    expected = reference(value, shapes, locations, weights)
    assert got.shape == (batch, queries, heads * head_dim)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_module_masks_padded_values_and_initial_offsets():
    torch.manual_seed(0)
    module = MultiScaleDeformableAttention(d_model=8, n_levels=1, n_heads=2, n_points=2)
    # initial offsets: head directions (cos, sin) normalized by max-abs, times point index + 1
    bias = module.sampling_offsets.bias.view(2, 1, 2, 2)
    torch.testing.assert_close(bias[0, 0], torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
    torch.testing.assert_close(bias[1, 0], torch.tensor([[-1.0, 0.0], [-2.0, 0.0]]), atol=1e-6, rtol=0)
    query = torch.randn(1, 3, 8)
    memory = torch.randn(1, 6, 8)
    reference_points = torch.rand(1, 3, 1, 2)
    mask = torch.tensor([[True, True, True, True, False, False]])
    out_masked = module(query, memory, mask, reference_points, [(2, 3)])
    changed = memory.clone()
    changed[:, 4:] = 100.0  # padded positions must not matter
    out_changed = module(query, changed, mask, reference_points, [(2, 3)])
    torch.testing.assert_close(out_masked, out_changed)


def test_runs_in_float32_under_bfloat16_autocast():
    module = MultiScaleDeformableAttention(d_model=8, n_levels=1, n_heads=2, n_points=2)
    query, memory = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(query, memory, None, torch.rand(1, 3, 1, 2), [(2, 3)])
    assert torch.isfinite(out).all()
