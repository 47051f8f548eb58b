"""Factories of fake model outputs and targets for the objective tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from egtr.models.outputs import DetectorOutput, EGTROutput


def _random_outputs(
    batch_size: int = 2,
    num_queries: int = 5,
    num_classes: int = 4,
    num_predicates: int = 3,
    num_layers: int = 3,
    num_sources: int = 4,
    seed: int = 0,
    connectivity: bool = True,
) -> EGTROutput:
    """An EGTROutput with random leaf tensors (requires_grad) and valid boxes (sigmoid of normal values)."""
    generator = torch.Generator().manual_seed(seed)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).requires_grad_()

    decoder_logits = leaf(batch_size, num_layers, num_queries, num_classes)
    decoder_boxes = (0.3 * torch.randn(batch_size, num_layers, num_queries, 4, generator=generator)).sigmoid()
    decoder_boxes = decoder_boxes.requires_grad_()
    rel_logits = leaf(batch_size, num_queries, num_queries, num_predicates)
    connectivity_logits = leaf(batch_size, num_queries, num_queries) if connectivity else None
    return EGTROutput(
        logits=decoder_logits[:, -1],
        pred_boxes=decoder_boxes[:, -1],
        rel_logits=rel_logits,
        connectivity_logits=connectivity_logits,
        pred_rel=rel_logits.sigmoid(),
        pred_connectivity=connectivity_logits.sigmoid() if connectivity else torch.ones(rel_logits.shape[:3]),
        attention_queries=torch.zeros(batch_size, num_layers, num_queries, 8),
        attention_keys=torch.zeros(batch_size, num_layers, num_queries, 8),
        decoder_logits=decoder_logits,
        decoder_boxes=decoder_boxes,
        last_hidden_state=torch.zeros(batch_size, num_queries, 8),
        relation_gates=torch.rand(batch_size, num_queries, num_queries, num_sources, generator=generator),
    )


def _random_targets(
    boxes_per_image: list[int],
    relations_per_image: list[int],
    num_classes: int = 4,
    num_predicates: int = 3,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Targets with random labels, valid boxes and random relations (duplicates possible)."""
    generator = torch.Generator().manual_seed(seed + 1000)
    targets = []
    for num_boxes, num_relations in zip(boxes_per_image, relations_per_image):
        centers = 0.2 + 0.6 * torch.rand(num_boxes, 2, generator=generator)
        sizes = 0.05 + 0.3 * torch.rand(num_boxes, 2, generator=generator)
        relations = torch.stack(
            (
                torch.randint(0, max(num_boxes, 1), (num_relations,), generator=generator),
                torch.randint(0, max(num_boxes, 1), (num_relations,), generator=generator),
                torch.randint(0, num_predicates, (num_relations,), generator=generator),
            ),
            dim=1,
        )
        targets.append(
            {
                "labels": torch.randint(0, num_classes, (num_boxes,), generator=generator),
                "boxes": torch.cat((centers, sizes), dim=1),
                "relations": relations,
                "image_id": 7,
            }
        )
    return targets


def _detector_outputs(outputs: EGTROutput) -> DetectorOutput:
    return DetectorOutput(
        logits=outputs.logits,
        pred_boxes=outputs.pred_boxes,
        decoder_logits=outputs.decoder_logits,
        decoder_boxes=outputs.decoder_boxes,
        last_hidden_state=outputs.last_hidden_state,
        attention_queries=outputs.attention_queries,
        attention_keys=outputs.attention_keys,
    )


@pytest.fixture
def random_outputs() -> Callable[..., EGTROutput]:
    return _random_outputs


@pytest.fixture
def random_targets() -> Callable[..., list[dict[str, torch.Tensor]]]:
    return _random_targets


@pytest.fixture
def detector_outputs() -> Callable[[EGTROutput], DetectorOutput]:
    return _detector_outputs
