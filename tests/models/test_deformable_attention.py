"""Multi-scale deformable attention: the gather kernel against a per-point bilinear reference and against
egtr 0.1's per-level grid_sample implementation (forward and gradients, edge cases)."""

import math

import pytest
import torch

from egtr.models.deformable_attention import MultiScaleDeformableAttention, multi_scale_deformable_attention
from tests.models.reference_deformable_attention import (
    grid_sample_deformable_attention,
    reference_attention_forward,
)


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


def per_point_reference(value, shapes, locations, weights):
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


def random_problem(shapes, batch=2, heads=2, head_dim=3, queries=4, points=3, spread=1.4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    total = sum(h * w for h, w in shapes)
    value = torch.randn(batch, total, heads, head_dim, generator=generator)
    # locations partly outside [0, 1] to exercise zero padding
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=generator)
    locations = locations * spread - (spread - 1) / 2
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=generator)
    return value, locations, weights / weights.sum((-1, -2), keepdim=True)


LEVELS = [[(5, 7)], [(6, 4), (3, 2), (1, 1)], [(1, 1)], [(9, 13), (5, 7), (3, 4), (2, 2)]]


@pytest.mark.parametrize("shapes", LEVELS[:2])
def test_kernel_matches_per_point_reference(shapes):
    value, locations, weights = random_problem(shapes)
    got = multi_scale_deformable_attention(value, shapes, locations, weights)
    expected = per_point_reference(value, shapes, locations, weights)
    assert got.shape == expected.shape == (2, 4, 6)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shapes", LEVELS)
def test_kernel_matches_grid_sample_forward_and_gradients(shapes):
    value, locations, weights = random_problem(shapes, spread=3.0)
    inputs = [t.clone().requires_grad_() for t in (value, locations, weights)]
    reference_inputs = [t.clone().requires_grad_() for t in (value, locations, weights)]
    got = multi_scale_deformable_attention(inputs[0], shapes, inputs[1], inputs[2])
    expected = grid_sample_deformable_attention(reference_inputs[0], shapes, *reference_inputs[1:])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(got)
    got.backward(upstream)
    expected.backward(upstream)
    for name, mine, theirs in zip(("value", "locations", "weights"), inputs, reference_inputs):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-5, msg=name)


def test_points_on_pixel_centres_borders_and_far_outside():
    """Exactly representable positions (so both kernels see the same coordinates): pixel centres, the map's
    edges (0 and 1), half a pixel beyond them, and far outside in every direction."""
    shapes = [(4, 8), (2, 2), (1, 1)]
    value, _, weights = random_problem(shapes, batch=1, heads=2, queries=1, points=1)
    special = torch.tensor([0.0, 1.0, 1 / 16, 15 / 16, 0.5, -1 / 16, 17 / 16, -3.0, 5.0, 0.25, 0.75])
    xs, ys = torch.meshgrid(special, special, indexing="ij")
    grid = torch.stack((xs.flatten(), ys.flatten()), -1)  # [K, 2]
    queries = len(grid)
    locations = grid[None, :, None, None, None, :].expand(1, queries, 2, len(shapes), 1, 2).contiguous()
    weights = weights.expand(1, queries, 2, len(shapes), 1).contiguous()
    inputs = [t.clone().requires_grad_() for t in (value, locations, weights)]
    reference_inputs = [t.clone().requires_grad_() for t in (value, locations, weights)]
    got = multi_scale_deformable_attention(inputs[0], shapes, inputs[1], inputs[2])
    expected = grid_sample_deformable_attention(reference_inputs[0], shapes, *reference_inputs[1:])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.double(), per_point_reference(value, shapes, locations, weights))
    outside = (grid < -0.5).any(-1) | (grid > 1.5).any(-1)
    assert (got[0, outside] == 0).all()
    got.sum().backward()
    expected.sum().backward()
    for mine, theirs in zip(inputs, reference_inputs):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-5)


def test_nan_locations_read_nothing():
    shapes = [(3, 3)]
    value, locations, weights = random_problem(shapes)
    locations[0, 0, 0, 0, 0, 0] = float("nan")
    got = multi_scale_deformable_attention(value, shapes, locations, weights)
    valid = locations.clone()
    valid[0, 0, 0, 0, 0] = -5.0  # the NaN point, moved outside the map
    torch.testing.assert_close(got, multi_scale_deformable_attention(value, shapes, valid, weights))


def random_module(levels=3, heads=2, points=2, d_model=8, seed=0):
    torch.manual_seed(seed)
    module = MultiScaleDeformableAttention(d_model=d_model, n_levels=levels, n_heads=heads, n_points=points)
    with torch.no_grad():  # offsets of a trained model, not the initial grid: points spread everywhere
        module.sampling_offsets.weight.normal_(std=0.5)
        module.attention_weights.weight.normal_(std=0.5)
    return module


def test_module_matches_grid_sample_module_with_padded_batch():
    """Batch of 2, the second padded (masked values), 3 levels including 1x1; outputs and the gradients of
    every parameter and input equal egtr 0.1's module within 1e-5."""
    shapes = [(4, 6), (2, 3), (1, 1)]
    total = sum(h * w for h, w in shapes)
    module = random_module()
    query = torch.randn(2, 5, 8, requires_grad=True)
    memory = torch.randn(2, total, 8, requires_grad=True)
    mask = torch.ones(2, total, dtype=torch.bool)
    mask[1, 3:6] = False
    mask[1, 9:12] = False
    reference_points = torch.rand(2, 5, 3, 2, requires_grad=True)
    arguments = (query, memory, mask, reference_points, shapes)
    got = module(*arguments)
    gradients = torch.autograd.grad(
        got.square().sum(), [query, memory, reference_points, *module.parameters()]
    )
    expected = reference_attention_forward(module, *arguments)
    reference_gradients = torch.autograd.grad(
        expected.square().sum(), [query, memory, reference_points, *module.parameters()]
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(gradients, reference_gradients):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


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


def test_sampling_stays_float32_under_bfloat16_autocast():
    """Under autocast the projections run in bf16 and the sampling in fp32, exactly as egtr 0.1 did."""
    module = random_module(levels=2)
    shapes = [(3, 4), (2, 2)]
    query, memory = torch.randn(2, 3, 8), torch.randn(2, 16, 8)
    reference_points = torch.rand(2, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = module(query, memory, None, reference_points, shapes)
        expected = reference_attention_forward(module, query, memory, None, reference_points, shapes)
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
