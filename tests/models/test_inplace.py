"""models/inplace.py: in place where autograd records nothing on a view, a new tensor otherwise; the same
numbers and gradients as the out-of-place formulas either way."""

import pytest
import torch
import torch.nn.functional as F

from egtr.models.inplace import add_, masked_fill_, rebuilds_a_view, relu_

MASK = torch.tensor([True, False, True, False, False])


def linear_view(requires_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-D linear layer's output (with a bias: a view of its 2-D product) and the layer's weight."""
    torch.manual_seed(0)
    weight = torch.randn(5, 4, requires_grad=requires_grad)
    return F.linear(torch.randn(2, 3, 4), weight, torch.randn(5)), weight


OPS = {
    "relu_": (relu_, lambda x: F.relu(x)),
    "add_": (lambda x: add_(x, torch.full_like(x, 0.5)), lambda x: x + 0.5),
    "masked_fill_": (lambda x: masked_fill_(x, MASK, 0.0), lambda x: x.masked_fill(MASK, 0.0)),
}


@pytest.mark.parametrize("name", OPS)
def test_a_view_under_autograd_gets_a_new_tensor_with_the_same_values_and_gradients(name):
    op, reference = OPS[name]
    x, weight = linear_view(requires_grad=True)
    assert x._is_view() and rebuilds_a_view(x)
    expected = reference(x)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), weight)
    x, weight = linear_view(requires_grad=True)
    got = op(x)
    assert got.data_ptr() != x.data_ptr() and torch.equal(got, expected)
    (grad,) = torch.autograd.grad(got.square().sum(), weight)
    assert torch.equal(grad, expected_grad)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("context", ["no_grad", "no tensor needs it", "a base tensor"])
def test_in_place_where_that_is_free(name, context):
    op, reference = OPS[name]
    if context == "a base tensor":
        x = torch.randn(2, 3, 5, requires_grad=True) * 1.0  # a non-leaf base: in place is recorded, no view
    else:
        x, _ = linear_view(requires_grad=context != "no tensor needs it")
    with torch.no_grad() if context == "no_grad" else torch.enable_grad():
        assert not rebuilds_a_view(x)
        expected = reference(x.detach().clone())
        got = op(x)
    assert got.data_ptr() == x.data_ptr() and torch.equal(got.detach(), expected)


def test_a_view_that_only_the_other_operand_makes_recorded_is_not_written():
    x, _ = linear_view(requires_grad=False)
    y = torch.full_like(x, 0.5, requires_grad=True)
    before = x.clone()
    total = add_(x, y)
    assert torch.equal(x, before) and torch.equal(total, before + 0.5) and total.requires_grad
