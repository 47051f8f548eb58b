"""Deformable DETR (single-stage, no box refinement) as used by EGTR (architecture.md §5.1, §5.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egtr.config import EGTRConfig
from egtr.models.backbone import ResNet, conv_norm
from egtr.models.deformable_attention import MultiScaleDeformableAttention
from egtr.models.denoising import DenoisingEmbedding, DenoisingQueries
from egtr.models.mlp import MLP
from egtr.models.outputs import DenoisingOutput, DetectorOutput
from egtr.models.position import SinePositionEmbedding
from egtr.models.transformer import DeformableDecoder, DeformableEncoder


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """log(x / (1 - x)) for x taken into [0, 1], with x and 1 - x each kept >= eps (so finite at 0 and 1)."""
    return x.clamp(eps, 1.0).log() - (1 - x).clamp(eps, 1.0).log()


def resize_mask(pixel_mask: Tensor, size: tuple[int, int]) -> Tensor:
    """[B,H,W] bool -> [B,h,w] bool by nearest-neighbour interpolation."""
    return F.interpolate(pixel_mask[None].float(), size=size).to(torch.bool)[0]


def valid_ratio(mask: Tensor) -> Tensor:
    """[B,h,w] bool -> [B,2] (w, h): the share of the first row and of the first column that is real image
    (padding is at the bottom and right)."""
    first_row, first_column = mask[:, 0, :], mask[:, :, 0]
    return torch.stack([first_row.float().mean(1), first_column.float().mean(1)], -1)


class DeformableDetr(nn.Module):
    """Backbone + input projections + deformable encoder/decoder + class and box heads."""

    def __init__(self, config: EGTRConfig) -> None:
        super().__init__()
        d = config.d_model
        self.config = config
        self.backbone = ResNet(
            config.backbone_depth,
            config.backbone_norm,
            freeze_downsample_batchnorm=config.freeze_downsample_batchnorm,
            frozen_stages=config.backbone_frozen_stages,
            width=config.backbone_width,
        )
        self.position_embedding = SinePositionEmbedding(d // 2)
        self.num_backbone_levels = min(3, config.num_feature_levels)
        channels = self.backbone.out_channels[3 - self.num_backbone_levels :]
        projections = [nn.Sequential(nn.Conv2d(c, d, 1), nn.GroupNorm(32, d)) for c in channels]
        in_channels = channels[-1]
        for _ in range(config.num_feature_levels - self.num_backbone_levels):
            projections.append(nn.Sequential(nn.Conv2d(in_channels, d, 3, 2, 1), nn.GroupNorm(32, d)))
            in_channels = d
        self.input_proj = nn.ModuleList(projections)
        self.query_position_embeddings = nn.Embedding(config.num_queries, 2 * d)
        self.level_embed = nn.Parameter(torch.empty(config.num_feature_levels, d))
        self.reference_points = nn.Linear(d, 2)
        self.encoder = DeformableEncoder(
            config.encoder_layers,
            config.dropout,
            d_model=d,
            heads=config.encoder_attention_heads,
            levels=config.num_feature_levels,
            points=config.encoder_n_points,
            ffn_dim=config.encoder_ffn_dim,
            activation_dropout=config.activation_dropout,
        )
        self.decoder = DeformableDecoder(
            config.decoder_layers,
            d_model=d,
            heads=config.decoder_attention_heads,
            levels=config.num_feature_levels,
            points=config.decoder_n_points,
            ffn_dim=config.decoder_ffn_dim,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            activation_dropout=config.activation_dropout,
        )
        self.class_embed = nn.Linear(d, config.num_labels)
        self.bbox_embed = MLP(d, d, 4, 3)
        # the denoising queries' embeddings exist only when query denoising is on (no keys otherwise)
        self.denoising = DenoisingEmbedding(config.num_labels, d) if config.denoising_groups else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR initialization for training from scratch (pre-trained weights overwrite it)."""
        for parameter in (*self.encoder.parameters(), *self.decoder.parameters()):
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        for module in (*self.encoder.modules(), *self.decoder.modules()):
            if isinstance(module, MultiScaleDeformableAttention):
                module.reset_parameters()
        nn.init.normal_(self.level_embed)
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)
        for projection in self.input_proj:
            nn.init.xavier_uniform_(projection[0].weight)
            nn.init.zeros_(projection[0].bias)
        prior_probability = 0.01
        nn.init.constant_(self.class_embed.bias, -math.log((1 - prior_probability) / prior_probability))
        nn.init.zeros_(self.bbox_embed.layers[-1].weight)
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)

    def multi_scale_features(
        self, pixel_values: Tensor, pixel_mask: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Projected feature maps [B,d,h_l,w_l] and their masks [B,h_l,w_l] for every level."""
        features = self.backbone(pixel_values)[3 - self.num_backbone_levels :]
        sources = [projection(feature) for projection, feature in zip(self.input_proj, features)]
        for level in range(len(features), len(self.input_proj)):
            source = features[-1] if level == len(features) else sources[-1]
            sources.append(conv_norm(source, *self.input_proj[level]))  # a stride-2 convolution
        masks = [resize_mask(pixel_mask, source.shape[-2:]) for source in sources]
        return sources, masks

    def forward(
        self,
        pixel_values: Tensor,
        pixel_mask: Tensor | None = None,
        denoising: DenoisingQueries | None = None,
    ) -> DetectorOutput:
        """pixel_values [B,3,H,W] normalized; pixel_mask [B,H,W] (True/1 = real pixel) or None;
        denoising: noised ground-truth queries run beside the matching ones (training only, needs
        config.denoising_groups > 0), their predictions in `DetectorOutput.denoising`."""
        batch, _, height, width = pixel_values.shape
        if pixel_mask is None:
            pixel_mask = torch.ones(batch, height, width, dtype=torch.bool, device=pixel_values.device)
        sources, masks = self.multi_scale_features(pixel_values, pixel_mask.bool())
        spatial_shapes = [tuple(source.shape[-2:]) for source in sources]
        flat_masks = torch.cat([mask.flatten(1) for mask in masks], 1)
        flat_pos = torch.cat(
            [
                self.position_embedding(mask).to(source.dtype).flatten(2).transpose(1, 2)
                + self.level_embed[level]
                for level, (source, mask) in enumerate(zip(sources, masks))
            ],
            1,
        )
        valid_ratios = torch.stack([valid_ratio(mask) for mask in masks], 1)
        flat_sources = torch.cat([source.flatten(2).transpose(1, 2) for source in sources], 1)
        del sources  # the encoder holds only the flattened copy, which it may overwrite
        memory = self.encoder(flat_sources, flat_pos, flat_masks, valid_ratios, spatial_shapes, True)

        query_pos, target = self.query_position_embeddings.weight.split(self.config.d_model, dim=1)
        query_pos = query_pos[None].expand(batch, -1, -1)
        target = target[None].expand(batch, -1, -1)
        reference_points = self.reference_points(query_pos).sigmoid()
        attention_mask = None
        if denoising is not None:
            if self.denoising is None:
                raise ValueError("denoising queries need a model built with config.denoising_groups > 0")
            dn_target, dn_pos, dn_reference = self.denoising(denoising)
            target = torch.cat([target, dn_target.to(target.dtype)], 1)
            query_pos = torch.cat([query_pos, dn_pos.to(query_pos.dtype)], 1)
            reference_points = torch.cat([reference_points, dn_reference.to(reference_points.dtype)], 1)
            attention_mask = denoising.attention_mask(self.config.num_queries)
        states, queries, keys = self.decoder(
            target,
            query_pos,
            reference_points,
            memory,
            flat_masks,
            valid_ratios,
            spatial_shapes,
            attention_mask,
        )
        decoder_logits = self.class_embed(states)
        box_deltas = self.bbox_embed(states)
        centre = box_deltas[..., :2] + inverse_sigmoid(reference_points)[:, None]
        decoder_boxes = torch.cat([centre, box_deltas[..., 2:]], -1).sigmoid()
        matching = self.config.num_queries  # the matching queries come first (egtr.models.denoising)
        denoised = None
        if denoising is not None:
            denoised = DenoisingOutput(
                denoising, decoder_logits[:, :, matching:], decoder_boxes[:, :, matching:]
            )
        return DetectorOutput(
            logits=decoder_logits[:, -1, :matching],
            pred_boxes=decoder_boxes[:, -1, :matching],
            decoder_logits=decoder_logits[:, :, :matching],
            decoder_boxes=decoder_boxes[:, :, :matching],
            last_hidden_state=states[:, -1, :matching],
            attention_queries=queries[:, :, :matching],
            attention_keys=keys[:, :, :matching],
            denoising=denoised,
        )
