"""EGTR = Deformable DETR detector + relation head (+ frequency bias); its outputs: architecture.md §4."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from egtr.config import EGTRConfig
from egtr.models.denoising import DenoisingQueries
from egtr.models.detector import DeformableDetr
from egtr.models.frequency_bias import FrequencyBias, log_prior
from egtr.models.outputs import EGTROutput
from egtr.models.relation_head import RelationHead


def relation_probabilities(
    rel_logits: Tensor, connectivity_logits: Tensor | None, config: EGTRConfig, rel_dist: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Raw relation outputs -> (pred_rel [B,N,N,R], pred_connectivity [B,N,N]).

    pred_rel = sigmoid(rel_logits), or sigmoid(rel_logits - tau * log(rel_dist)) with post-hoc logit
    adjustment (`config.logit_adjustment`, tau = `config.logit_adj_tau`; rel_dist [R] is the predicate
    prior); pred_connectivity = sigmoid(connectivity_logits), ones when the connectivity head is off.
    The model's forward and every exported-model backend turn raw outputs into scores with this function.
    """
    adjusted = rel_logits
    if config.logit_adjustment:
        if rel_dist is None:
            raise ValueError("logit adjustment needs the predicate prior rel_dist, and this model has none")
        adjusted = rel_logits - config.logit_adj_tau * log_prior(rel_dist, config.freq_bias_eps).to(
            rel_logits.dtype
        )
    if connectivity_logits is None:
        pred_connectivity = rel_logits.new_ones(rel_logits.shape[:-1])
    else:
        pred_connectivity = connectivity_logits.sigmoid()
    return adjusted.sigmoid(), pred_connectivity


def logit_adjusted(
    config: EGTRConfig, rel_dist: Tensor | None, enabled: bool, tau: float | None = None
) -> EGTRConfig:
    """`config` with post-hoc logit adjustment (pred_rel from rel_logits - tau * log rel_dist) switched on or
    off, as the official evaluation's --logit_adjustment / --logit_adj_tau override the checkpoint's config.
    `tau` None keeps the config's value. Enabling needs the predicate prior rel_dist [R], filled from
    training statistics."""
    tau = config.logit_adj_tau if tau is None else tau
    if enabled and (rel_dist is None or not bool(rel_dist.sum() > 0)):
        raise ValueError(
            "logit adjustment needs the predicate prior rel_dist, which this model does not hold "
            "(its frequency tables were never filled from training statistics)"
        )
    return config.replace(logit_adjustment=bool(enabled), logit_adj_tau=float(tau))


class EGTR(nn.Module):
    """Scene graph generation model: boxes, classes and predicate/connectivity scores for all query pairs."""

    def __init__(self, config: EGTRConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.detector = DeformableDetr(config)
        self.relation_head = RelationHead(config)
        # always present, as officially: logit adjustment can be switched on for any model, and official
        # checkpoints trained without the bias still carry the tables
        self.frequency_bias = FrequencyBias(
            config.num_labels, config.num_rel_labels, config.frequency_bias_mode, config.freq_bias_eps
        )

    def set_frequency_statistics(self, fg_matrix: Tensor) -> None:
        """Fill the frequency-bias tables from training triplet counts [C+1, C+1, R]."""
        self.frequency_bias.set_statistics(torch.as_tensor(fg_matrix))

    def set_logit_adjustment(self, enabled: bool, tau: float | None = None) -> None:
        """Switch post-hoc logit adjustment on or off (see `logit_adjusted`)."""
        self.config = logit_adjusted(self.config, self.rel_dist, enabled, tau)

    @property
    def rel_dist(self) -> Tensor:
        """[R] predicate prior (training frequencies) of the frequency bias (zeros until filled)."""
        return self.frequency_bias.rel_dist

    def forward(
        self,
        pixel_values: Tensor,
        pixel_mask: Tensor | None = None,
        denoising: DenoisingQueries | None = None,
    ) -> EGTROutput:
        """pixel_values [B,3,H,W] normalized; pixel_mask [B,H,W] (True/1 = real pixel) -> EGTROutput.

        `denoising` (training with config.denoising_groups > 0): noised ground-truth queries for the
        detector (egtr.models.denoising); the relation head reads the matching queries only."""
        detection = self.detector(pixel_values, pixel_mask, denoising)
        rel_logits, connectivity_logits, gates = self.relation_head(
            detection.attention_queries, detection.attention_keys, detection.last_hidden_state
        )
        if self.config.use_freq_bias:
            rel_logits = rel_logits + self.frequency_bias(detection.logits).to(rel_logits.dtype)
        pred_rel, pred_connectivity = relation_probabilities(
            rel_logits, connectivity_logits, self.config, self.rel_dist
        )
        return EGTROutput(
            logits=detection.logits,
            pred_boxes=detection.pred_boxes,
            rel_logits=rel_logits,
            connectivity_logits=connectivity_logits,
            pred_rel=pred_rel,
            pred_connectivity=pred_connectivity,
            attention_queries=detection.attention_queries,
            attention_keys=detection.attention_keys,
            decoder_logits=detection.decoder_logits,
            decoder_boxes=detection.decoder_boxes,
            last_hidden_state=detection.last_hidden_state,
            relation_gates=gates,
            denoising=detection.denoising,
        )
