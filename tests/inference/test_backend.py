"""The PyTorch backend and the shared step from raw outputs to scores."""

import pytest
import torch

from egtr.inference.backend import Backend, RawOutputs, TorchBackend

from .conftest import small_model


def statistics_model(**overrides):
    model = small_model(**overrides)
    config = model.config
    counts = torch.randint(0, 5, (config.num_labels + 1, config.num_labels + 1, config.num_rel_labels))
    model.set_frequency_statistics(counts)
    return model


def test_raw_outputs_are_the_models_and_scores_are_its_forward_scores():
    model = statistics_model()
    backend = TorchBackend(model, "cpu")
    assert isinstance(backend, Backend) and backend.config is model.config
    pixels, mask = torch.randn(2, 3, 40, 48), torch.ones(2, 40, 48, dtype=torch.bool)
    raw = backend.run(pixels, mask)
    with torch.inference_mode():
        output = model(pixels, mask)
    for name in ("logits", "pred_boxes", "rel_logits", "connectivity_logits"):
        torch.testing.assert_close(getattr(raw, name), getattr(output, name), rtol=0, atol=0)
    scored = raw.scored(backend.config, backend.rel_dist)
    torch.testing.assert_close(scored.pred_rel, output.pred_rel, rtol=0, atol=0)
    torch.testing.assert_close(scored.pred_connectivity, output.pred_connectivity, rtol=0, atol=0)
    # the logit-adjustment switch lives in the config shared by the model and the backend
    backend.config.logit_adjustment, backend.config.logit_adj_tau = True, 0.5
    adjusted = raw.scored(backend.config, backend.rel_dist)
    with torch.inference_mode():
        torch.testing.assert_close(adjusted.pred_rel, model(pixels, mask).pred_rel)
    prior = model.rel_dist.clamp(min=model.config.freq_bias_eps).log()
    torch.testing.assert_close(adjusted.pred_rel, (raw.rel_logits - 0.5 * prior).sigmoid())


def test_reduced_precision_autocasts_and_stays_close():
    model = small_model()
    pixels, mask = torch.randn(1, 3, 32, 48), torch.ones(1, 32, 48, dtype=torch.bool)
    exact = TorchBackend(model, "cpu").run(pixels, mask)
    reduced = TorchBackend(model, "cpu", "bf16").run(pixels, mask)
    assert reduced.rel_logits.dtype == torch.bfloat16
    assert (reduced.pred_boxes.float() - exact.pred_boxes).abs().max() < 0.05
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchBackend(model, "cpu", "int8")


def test_raw_outputs_without_connectivity():
    raw = RawOutputs(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.zeros(1, 2, 2, 5), None)
    scored = raw.scored(small_model().config, None)
    assert torch.equal(scored.pred_connectivity, torch.ones(1, 2, 2))
    assert torch.equal(scored.pred_rel, torch.full((1, 2, 2, 5), 0.5))
