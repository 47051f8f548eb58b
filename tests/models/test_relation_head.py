"""The factorized relation head against the naive pair-tensor implementation (architecture.md §5.3)."""

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models.relation_head import RelationHead
from tests.reference_relation_head import naive_relation_head


def make_inputs(batch=2, layers=3, queries=7, d=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, layers, queries, d)
    q = torch.randn(shape, generator=generator, requires_grad=True)
    k = torch.randn(shape, generator=generator, requires_grad=True)
    h = torch.randn(batch, queries, d, generator=generator, requires_grad=True)
    return q, k, h


def config(**overrides):
    return EGTRConfig.small(
        d_model=16,
        decoder_layers=3,
        decoder_attention_heads=4,
        num_rel_labels=5,
        **overrides,
    )


def relative_error(x, y):
    return ((x - y).norm() / y.norm().clamp(min=1e-12)).item()


@pytest.mark.parametrize("function", ["concat", "sum", "product", "dot"])
@pytest.mark.parametrize(
    "sources",
    [
        dict(),
        dict(relation_attention_layers=[2]),
        dict(relation_use_final_hidden=False),
        dict(relation_attention_layers=[], relation_use_final_hidden=True),
    ],
)
def test_efficient_head_matches_naive_with_gradients(function, sources):
    torch.manual_seed(0)
    head = RelationHead(config(relation_function=function, **sources)).double()
    for parameter in head.parameters():  # non-trivial weights (official init has zero biases)
        torch.nn.init.normal_(parameter, std=0.3)
    q, k, h = (t.detach().double().requires_grad_() for t in make_inputs())
    rel, conn, gates = head(q, k, h)
    rel_ref, conn_ref, gates_ref = naive_relation_head(head, q, k, h, function, 4)
    assert rel.shape == (2, 7, 7, 5) and conn.shape == (2, 7, 7)
    assert gates.shape == (2, 7, 7, head.proj_q.__len__() + int(head.use_final_hidden))
    for got, expected in ((rel, rel_ref), (conn, conn_ref), (gates, gates_ref)):
        assert relative_error(got, expected) < 1e-10
    weights = torch.randn_like(rel)
    loss = (rel * weights).sum() + conn.square().sum()
    grads = torch.autograd.grad(loss, [q, k, h, *head.parameters()], allow_unused=True)
    loss_ref = (rel_ref * weights).sum() + conn_ref.square().sum()
    grads_ref = torch.autograd.grad(loss_ref, [q, k, h, *head.parameters()], allow_unused=True)
    for got, expected in zip(grads, grads_ref):
        if expected is None:
            assert got is None or got.abs().max() == 0
        else:
            assert relative_error(got, expected) < 1e-10


def test_float32_relative_error_below_1e5():
    torch.manual_seed(1)
    head = RelationHead(config())
    for parameter in head.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    q, k, h = make_inputs(queries=20)
    rel, conn, _ = head(q, k, h)
    rel_ref, conn_ref, _ = naive_relation_head(head, q, k, h, "concat", 4)
    assert relative_error(rel, rel_ref) < 1e-5
    assert relative_error(conn, conn_ref) < 1e-5
    grads = torch.autograd.grad(rel.sum() + conn.sum(), [q, k, h])
    grads_ref = torch.autograd.grad(rel_ref.sum() + conn_ref.sum(), [q, k, h])
    for got, expected in zip(grads, grads_ref):
        assert relative_error(got, expected) < 1e-5


def test_connectivity_head_off():
    head = RelationHead(config(use_connectivity=False))
    rel, conn, gates = head(*make_inputs())
    assert conn is None and rel.shape == (2, 7, 7, 5) and gates.shape == (2, 7, 7, 4)
    assert not any(name.startswith("connectivity_layer") for name, _ in head.named_parameters())


def test_official_parameter_names_and_shapes():
    head = RelationHead(EGTRConfig.visual_genome())
    shapes = {name: tuple(p.shape) for name, p in head.named_parameters()}
    assert shapes["proj_q.5.weight"] == (256, 256) and "proj_q.6.weight" not in shapes
    assert shapes["final_sub_proj.weight"] == (256, 256)
    assert shapes["rel_predictor_gate.weight"] == (1, 512)
    assert shapes["rel_predictor.layers.0.weight"] == (256, 512)
    assert shapes["rel_predictor.layers.2.weight"] == (50, 256)
    assert shapes["connectivity_layer.layers.2.weight"] == (1, 256)
    # 14 projections x 65,792 + gate 513 + predicate MLP 131,328 + 65,792 + 12,850
    # + connectivity MLP 131,328 + 65,792 + 257 = 1,328,948 (spec: relation head alone ≈ 1.33M)
    assert sum(p.numel() for p in head.parameters()) == 1_328_948
