"""EGTR end to end: parameter count, shapes, padding, ablation switches, frequency bias."""

import math

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models.detector import resize_mask, valid_ratio
from egtr.models.egtr import EGTR, relation_probabilities
from egtr.models.frequency_bias import FrequencyBias
from egtr.models.position import SinePositionEmbedding
from egtr.models.transformer import encoder_reference_points


def test_visual_genome_parameter_count_matches_official():
    model = EGTR(EGTRConfig.visual_genome())
    # architecture.md §5.9: 41,362,576 + 1,140,100 (triplet_dist + rel_dist) + 7,680 (4 trainable downsample
    # BNs)
    assert sum(p.numel() for p in model.parameters()) == 42_510_356
    assert model.frequency_bias.triplet_dist.numel() + model.frequency_bias.rel_dist.numel() == 1_140_100
    trainable_bn = [n for n, p in model.named_parameters() if "downsample.1" in n]
    assert len(trainable_bn) == 8
    assert sum(model.get_parameter(n).numel() for n in trainable_bn) == 7_680


def test_frozen_parts_as_officially():
    model = EGTR(EGTRConfig.visual_genome())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "detector.backbone.conv1.weight" in frozen
    assert "detector.backbone.layer1.0.conv1.weight" in frozen
    assert "detector.backbone.layer1.0.downsample.1.weight" in frozen
    assert "detector.backbone.layer2.0.conv1.weight" not in frozen
    assert "detector.backbone.layer2.0.downsample.1.weight" not in frozen
    assert {"frequency_bias.triplet_dist", "frequency_bias.rel_dist"} <= frozen
    assert all(n.startswith(("detector.backbone.", "frequency_bias.")) for n in frozen)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return EGTR(EGTRConfig.small()).eval()


def test_output_shapes_for_mixed_sizes_with_padding(small_model):
    config = small_model.config
    batch = torch.zeros(3, 3, 96, 128)
    mask = torch.zeros(3, 96, 128, dtype=torch.bool)
    for index, (h, w) in enumerate([(96, 128), (64, 64), (50, 90)]):
        batch[index, :, :h, :w] = torch.randn(3, h, w)
        mask[index, :h, :w] = True
    with torch.no_grad():
        out = small_model(batch, mask)
    n, c, r, layers, d = (
        config.num_queries,
        config.num_labels,
        config.num_rel_labels,
        config.decoder_layers,
        config.d_model,
    )
    assert out.logits.shape == (3, n, c) and out.pred_boxes.shape == (3, n, 4)
    assert out.rel_logits.shape == (3, n, n, r) and out.pred_rel.shape == (3, n, n, r)
    assert out.connectivity_logits.shape == (3, n, n) and out.pred_connectivity.shape == (3, n, n)
    assert out.attention_queries.shape == (3, layers, n, d) and out.attention_keys.shape == (3, layers, n, d)
    assert out.decoder_logits.shape == (3, layers, n, c) and out.decoder_boxes.shape == (3, layers, n, 4)
    assert out.relation_gates.shape == (3, n, n, layers + 1)
    assert ((out.pred_boxes >= 0) & (out.pred_boxes <= 1)).all()
    torch.testing.assert_close(out.pred_rel, out.rel_logits.sigmoid())
    torch.testing.assert_close(out.logits, out.decoder_logits[:, -1])
    torch.testing.assert_close(out.pred_connectivity, out.connectivity_logits.sigmoid())


def test_image_alone_and_padded_in_batch(small_model):
    """The unpadded image of a batch gives its solo outputs. A padded image differs a little, as in the
    official model: GroupNorm statistics and backbone convolutions near the border see the zero padding.
    Stated tolerance (random init, 64x96 in 128x128): probabilities within 0.02, boxes within 1e-3.
    """
    torch.manual_seed(1)
    small, large = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 128, 128)
    batch = torch.zeros(2, 3, 128, 128)
    mask = torch.zeros(2, 128, 128, dtype=torch.bool)
    batch[0, :, :64, :96], mask[0, :64, :96] = small[0], True
    batch[1], mask[1] = large[0], True
    with torch.no_grad():
        both = small_model(batch, mask)
        alone_small, alone_large = small_model(small), small_model(large)
    for name in ("logits", "pred_boxes", "rel_logits", "pred_connectivity"):
        torch.testing.assert_close(
            getattr(both, name)[1], getattr(alone_large, name)[0], rtol=1e-4, atol=1e-4
        )
    assert (both.logits[0].sigmoid() - alone_small.logits[0].sigmoid()).abs().max() < 0.02
    assert (both.pred_rel[0] - alone_small.pred_rel[0]).abs().max() < 0.02
    assert (both.pred_connectivity[0] - alone_small.pred_connectivity[0]).abs().max() < 0.02
    assert (both.pred_boxes[0] - alone_small.pred_boxes[0]).abs().max() < 1e-3


def test_masks_valid_ratios_and_reference_points():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :6] = True
    small = resize_mask(mask, (4, 4))
    assert small[0].sum() == 2 * 3 and small[0, :2, :3].all()
    torch.testing.assert_close(valid_ratio(small), torch.tensor([[0.75, 0.5]]))
    ratios = valid_ratio(small)[:, None]  # one level
    points = encoder_reference_points([(4, 4)], ratios)
    # pixel (row 0, col 0): centre (0.5, 0.5) / (ratio * size) * ratio = (0.5/4, 0.5/4)
    torch.testing.assert_close(points[0, 0, 0], torch.tensor([0.125, 0.125]))
    # pixel (row 1, col 2): x = 2.5 / (0.75*4) * 0.75 = 0.625, y = 1.5 / (0.5*4) * 0.5 = 0.375
    torch.testing.assert_close(points[0, 1 * 4 + 2, 0], torch.tensor([0.625, 0.375]))


def test_sine_position_embedding_hand_values():
    mask = torch.ones(1, 2, 3, dtype=torch.bool)
    pos = SinePositionEmbedding(num_feats=4)(mask)
    assert pos.shape == (1, 8, 2, 3)
    # y channels first: row 1 -> y = (2 - 0.5) / (2 + 1e-6) * 2π;
    # channel 0 = sin(y / 10000^0), 1 = cos(y / 10000^0), 2 = sin(y / 10000^(2/4)), ...
    y = 1.5 / (2 + 1e-6) * 2 * math.pi
    x = 2.5 / (3 + 1e-6) * 2 * math.pi  # column 2
    expected_y = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100)]
    expected_x = [math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    torch.testing.assert_close(pos[0, :, 1, 2], torch.tensor(expected_y + expected_x), rtol=1e-5, atol=1e-6)


def hand_counts() -> torch.Tensor:
    """2 classes (+1 unused row/col), 3 predicates: pair (0,1) seen [4,1,0], pair (1,0) [0,2,0], rest 0."""
    fg = torch.zeros(3, 3, 3, dtype=torch.int64)
    fg[0, 1] = torch.tensor([4, 1, 0])
    fg[1, 0] = torch.tensor([0, 2, 0])
    return fg


def table_of(mode: str) -> torch.Tensor:
    bias = FrequencyBias(2, 3, mode=mode)
    bias.set_statistics(hand_counts())
    return bias.triplet_dist


def test_frequency_bias_official_formula_hand_computed():
    table = table_of("official")
    tiny = math.log(1e-12 / 5)  # an unseen predicate of a seen pair: log(0 + eps / total) ≈ -29.2
    torch.testing.assert_close(table[0, 1], torch.tensor([math.log(4), 0.0, tiny]))
    torch.testing.assert_close(
        table[1, 0], torch.tensor([math.log(1e-12 / 2), math.log(2), math.log(1e-12 / 2)])
    )
    assert torch.equal(table[1, 1], torch.zeros(3))  # zero-count row: log(0 + eps / eps) = 0
    bias = FrequencyBias(2, 3)
    bias.set_statistics(hand_counts())
    torch.testing.assert_close(bias.rel_dist, torch.tensor([4 / 7, 3 / 7, 0.0]))
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])  # query 0 -> class 0, query 1 -> class 1
    out = bias(logits)
    assert out.shape == (1, 2, 2, 3)
    torch.testing.assert_close(out[0, 0, 1], table[0, 1])
    torch.testing.assert_close(out[0, 1, 0], table[1, 0])
    with pytest.raises(ValueError, match="shape"):
        bias.set_statistics(torch.zeros(2, 2, 2))


def test_frequency_bias_log_softmax_is_the_official_switch_over_raw_counts():
    """The official use_log_softmax: log_softmax over counts + tiny constant, not over log counts."""
    table = table_of("log_softmax")
    normalizer = math.log(math.exp(4) + math.exp(1) + math.exp(0))
    torch.testing.assert_close(table[0, 1], torch.tensor([4 - normalizer, 1 - normalizer, -normalizer]))
    torch.testing.assert_close(table[1, 1], torch.full((3,), -math.log(3)))  # zero row: softmax of [1,1,1]


def test_frequency_bias_log_probability_is_the_normalized_log_frequency():
    table = table_of("log_probability")
    torch.testing.assert_close(table[0, 1], torch.tensor([math.log(0.8), math.log(0.2), math.log(4e-14)]))
    torch.testing.assert_close(table[1, 0, 1], torch.tensor(0.0))  # the only predicate seen: probability 1
    torch.testing.assert_close(table[1, 1], torch.full((3,), -math.log(3)))  # zero row: uniform
    torch.testing.assert_close(table.exp().sum(-1), torch.ones(3, 3))


def test_frequency_bias_is_added_and_logit_adjustment_only_changes_pred_rel():
    torch.manual_seed(0)
    config = EGTRConfig.small(logit_adjustment=True, logit_adj_tau=0.5)
    model = EGTR(config).eval()
    fg = torch.randint(0, 5, (config.num_labels + 1, config.num_labels + 1, config.num_rel_labels))
    model.set_frequency_statistics(fg)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        plain = EGTR(config.replace(use_freq_bias=False, logit_adjustment=False)).eval()
        plain.load_state_dict(model.state_dict())
        base = plain(x)
    bias = model.frequency_bias(out.logits)
    torch.testing.assert_close(out.rel_logits, base.rel_logits + bias)
    prior = model.frequency_bias.rel_dist.clamp(min=1e-12).log()
    torch.testing.assert_close(out.pred_rel, (out.rel_logits - 0.5 * prior).sigmoid())


def test_relation_probabilities_by_hand():
    config = EGTRConfig.small()
    rel_logits = torch.tensor([[[[0.0, 2.0, -1.0, 0.5, 1.0, -2.0]]]])  # [1,1,1,6]
    connectivity = torch.tensor([[[3.0]]])
    pred_rel, pred_connectivity = relation_probabilities(rel_logits, connectivity, config, None)
    torch.testing.assert_close(pred_rel, torch.sigmoid(rel_logits))
    torch.testing.assert_close(pred_connectivity, torch.tensor([[[0.9525741]]]))
    _, ones = relation_probabilities(rel_logits, None, config, None)
    assert torch.equal(ones, torch.ones(1, 1, 1))
    adjusted_config = config.replace(logit_adjustment=True, logit_adj_tau=1.0)
    rel_dist = torch.tensor([0.5, 0.25, 0.25, 0.0, 0.0, 0.0])  # zeros are floored at eps = 1e-12
    pred_rel, _ = relation_probabilities(rel_logits, connectivity, adjusted_config, rel_dist)
    expected = torch.sigmoid(rel_logits - torch.tensor([0.5, 0.25, 0.25, 1e-12, 1e-12, 1e-12]).log())
    torch.testing.assert_close(pred_rel, expected)
    with pytest.raises(ValueError, match="needs the predicate prior"):
        relation_probabilities(rel_logits, connectivity, adjusted_config, None)


ABLATIONS = [
    dict(relation_attention_layers=[], relation_use_final_hidden=True),  # final hidden only
    dict(relation_use_final_hidden=False),  # attention only
    dict(relation_attention_layers=[0, 2]),  # chosen layers
    dict(relation_function="sum"),
    dict(relation_function="product"),
    dict(relation_function="dot"),
    dict(use_connectivity=False),
    dict(use_freq_bias=False),
    dict(frequency_bias_mode="log_softmax"),
    dict(frequency_bias_mode="log_probability"),
    dict(freeze_downsample_batchnorm=True),
    dict(backbone_norm="batch", backbone_frozen_stages=0),
    dict(backbone_depth=34),
    dict(num_feature_levels=4),
    dict(num_feature_levels=1),
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_ablation_switch_builds_runs_and_backpropagates(overrides):
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.small(num_queries=10, **overrides))
    out = model(torch.randn(2, 3, 64, 64))
    sources = model.config.num_relation_sources
    assert out.relation_gates.shape == (2, 10, 10, sources)
    assert out.rel_logits.shape == (2, 10, 10, model.config.num_rel_labels)
    loss = out.rel_logits.sum() + out.logits.sum() + out.pred_boxes.sum()
    if out.connectivity_logits is not None:
        loss = loss + out.connectivity_logits.sum()
    else:
        assert torch.equal(out.pred_connectivity, torch.ones(2, 10, 10))
    loss.backward()
    grads = [p.grad for p in model.relation_head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_config_rejects_no_relation_source():
    with pytest.raises(ValueError, match="at least one source"):
        EGTRConfig.small(relation_attention_layers=[], relation_use_final_hidden=False)
    with pytest.raises(ValueError, match="relation_attention_layers"):
        EGTRConfig.small(relation_attention_layers=[7])


def test_frequency_tables_are_always_present_and_logit_adjustment_can_be_switched_on():
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.small(num_queries=10, use_freq_bias=False)).eval()
    assert {"frequency_bias.triplet_dist", "frequency_bias.rel_dist"} <= set(model.state_dict())
    with pytest.raises(ValueError, match="predicate prior"):
        model.set_logit_adjustment(True)  # tables never filled
    fg = torch.randint(0, 5, (13, 13, 6))
    model.set_frequency_statistics(fg)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        model.set_logit_adjustment(True, 0.7)
        adjusted = model(x)
    assert model.config.logit_adjustment and model.config.logit_adj_tau == 0.7
    torch.testing.assert_close(adjusted.rel_logits, plain.rel_logits)  # the bias stays off
    prior = model.frequency_bias.rel_dist.clamp(min=1e-12).log()
    torch.testing.assert_close(adjusted.pred_rel, (plain.rel_logits - 0.7 * prior).sigmoid())
    model.set_logit_adjustment(False)
    assert not model.config.logit_adjustment and model.config.logit_adj_tau == 0.7
