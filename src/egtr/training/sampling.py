"""Per-image choice of a quota of candidate entries: the hardest (largest logit) or a uniform random subset.

Vectorized over the batch (one top-k over each image's entries). The random choice ranks candidates by
i.i.d. uniform keys from torch's global generator (so `seed_everything` applies), which picks each subset of
the quota's size with equal probability, like the official `random.sample`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def quotas(positive_counts: Tensor, candidate_counts: Tensor, ratio: int | None) -> Tensor:
    """Entries to keep per image: min(ratio * positives, candidates); all candidates when ratio is None.

    positive_counts, candidate_counts: [B] long -> [B] long.
    """
    if ratio is None:
        return candidate_counts
    return torch.minimum(positive_counts * ratio, candidate_counts)


def select_entries(logits: Tensor, excluded: Tensor, quota: Tensor, largest: bool) -> Tensor:
    """Choose `quota[b]` of the entries of image b that are not excluded.

    logits [B,...] float; excluded: bool, broadcastable to logits (True = not a candidate); quota [B] long,
    at most the number of candidates of each image. largest=True takes the candidates with the largest
    logits (hard examples), False a uniform random subset.
    Returns the chosen entries as indices into logits.flatten() ([S] long, S = quota.sum()).
    """
    batch_size = logits.shape[0]
    most = int(quota.max()) if quota.numel() else 0
    if most == 0:
        return torch.zeros(0, dtype=torch.long, device=logits.device)
    keys = logits.detach().float() if largest else torch.rand(logits.shape, device=logits.device)
    keys = keys.masked_fill(excluded, float("-inf")).reshape(batch_size, -1)
    ranked = keys.topk(most, dim=1).indices
    within_quota = torch.arange(most, device=quota.device)[None, :] < quota[:, None]
    image_offset = torch.arange(batch_size, device=logits.device)[:, None] * keys.shape[1]
    return (ranked + image_offset)[within_quota]
