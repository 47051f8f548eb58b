"""The naive relation head: builds the [B,N,N,S,F] pair tensor literally (the official form).

Used by the tests as the obviously-correct reference and by benchmarks/ for the memory/time comparison.
"""

import torch
import torch.nn.functional as F

from egtr.models.relation_head import RelationHead


def naive_relation_head(head: RelationHead, queries, keys, hidden, function: str = "concat", heads: int = 8):
    """Literal form: build R [B,N,N,S,F], gate, sum over S, then both MLPs (official, for concat)."""
    subjects, objects = [], []
    for index, layer in enumerate(head.layer_indices):
        subjects.append(head.proj_q[index](queries[:, layer]))
        objects.append(head.proj_k[index](keys[:, layer]))
    if head.use_final_hidden:
        subjects.append(head.final_sub_proj(hidden))
        objects.append(head.final_obj_proj(hidden))
    a = torch.stack(subjects, 2)  # [B,N,S,d]
    b = torch.stack(objects, 2)
    n = a.shape[1]
    a_pairs = a[:, :, None].expand(-1, -1, n, -1, -1)  # [B,N,N,S,d] subject i
    b_pairs = b[:, None, :].expand(-1, n, -1, -1, -1)  # object j
    if function == "concat":
        pairs = torch.cat([a_pairs, b_pairs], -1)
    elif function == "sum":
        pairs = a_pairs + b_pairs
    elif function == "product":
        pairs = a_pairs * b_pairs
    else:
        shape = (*a_pairs.shape[:-1], heads, -1)
        pairs = (a_pairs.reshape(shape) * b_pairs.reshape(shape)).sum(-1)
    gates = torch.sigmoid(head.rel_predictor_gate(pairs))  # [B,N,N,S,1]
    summed = (gates * pairs).sum(3)

    def mlp(module, x):
        for i, layer in enumerate(module.layers):
            x = layer(x)
            if i < len(module.layers) - 1:
                x = F.relu(x)
        return x

    connectivity = (
        mlp(head.connectivity_layer, summed)[..., 0] if head.connectivity_layer is not None else None
    )
    return mlp(head.rel_predictor, summed), connectivity, gates[..., 0]
