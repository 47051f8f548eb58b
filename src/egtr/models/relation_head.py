"""EGTR relation extractor: gated pair features from decoder self-attention q/k, read by shallow MLPs.

For every relation source s (decoder layer l, or the final hidden states) the head projects a subject
feature a_{s,i} and an object feature b_{s,j} (proj_q / proj_k, or final_sub_proj / final_obj_proj), forms
the pair feature R_s(i, j) = f(a_{s,i}, b_{s,j}) with the relation function f (official: concatenation),
gates it with one shared Linear(F, 1) and sums: P(i, j) = Σ_s sigmoid(gate(R_s)) * R_s. Two MLPs read P:
predicate logits [R] and connectivity [1] (architecture.md §5.3).

Efficiency (architecture.md §3, models/): when f is linear in (a, b) (concat, sum), the gate logit and the
first layer of both MLPs split into per-object terms, so W1 P(i, j) = Σ_s g_s(i,j) (W_a a_{s,i}) +
Σ_s g_s(i,j) (W_b b_{s,j}): two batched matmuls over the S sources. The [B,N,N,S,F] pair tensor is never
built.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from egtr.config import EGTRConfig
from egtr.models.eager import eager_float32_inference
from egtr.models.inplace import add_
from egtr.models.mlp import MLP

PAIR_BAND_BYTES = 8 << 20  # one band's pair-sized hidden layer at inference (41 MB whole for 200 queries)


def pair_feature_dim(function: str, d_model: int, heads: int) -> int:
    """Width F of a pair feature for relation function `function`."""
    return {"concat": 2 * d_model, "sum": d_model, "product": d_model, "dot": heads}[function]


def pair_features(function: str, subjects: Tensor, objects: Tensor, heads: int) -> Tensor:
    """Pair features of one source: subjects, objects [B,N,d] -> [B,N,N,F] (subject i, object j)."""
    batch, queries, d_model = subjects.shape
    a, b = subjects[:, :, None, :], objects[:, None, :, :]
    if function == "concat":
        return torch.cat(torch.broadcast_tensors(a, b), dim=-1)
    if function == "sum":
        return a + b
    if function == "product":
        return a * b
    a = subjects.view(batch, queries, heads, d_model // heads)
    b = objects.view(batch, queries, heads, d_model // heads)
    return torch.einsum("bihc,bjhc->bijh", a, b)


def split_linear_weight(function: str, weight: Tensor, d_model: int) -> tuple[Tensor, Tensor]:
    """Subject and object parts [out, d] of a Linear weight [out, F] acting on a linear pair feature."""
    if function == "concat":
        return weight[:, :d_model], weight[:, d_model:]
    return weight, weight  # sum


class RelationHead(nn.Module):
    """Predicate and connectivity logits for every ordered query pair."""

    def __init__(self, config: EGTRConfig) -> None:
        super().__init__()
        d = config.d_model
        self.d_model = d
        self.function = config.relation_function
        self.heads = config.decoder_attention_heads
        self.layer_indices = config.relation_layers
        self.use_final_hidden = config.relation_use_final_hidden
        self.proj_q = nn.ModuleList(nn.Linear(d, d) for _ in self.layer_indices)
        self.proj_k = nn.ModuleList(nn.Linear(d, d) for _ in self.layer_indices)
        if self.use_final_hidden:
            self.final_sub_proj = nn.Linear(d, d)
            self.final_obj_proj = nn.Linear(d, d)
        width = pair_feature_dim(self.function, d, self.heads)
        self.rel_predictor_gate = nn.Linear(width, 1)
        self.rel_predictor = MLP(width, config.d_model, config.num_rel_labels, 3)
        self.connectivity_layer = MLP(width, config.d_model, 1, 3) if config.use_connectivity else None
        self.reset_parameters(config.init_std)

    def reset_parameters(self, std: float) -> None:
        """Official init of newly added modules: Linear weights N(0, std), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)

    def source_features(self, queries: Tensor, keys: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Projected subject and object features of every source.

        Args:
            queries, keys: [B,L,N,d] self-attention q/k projections of all decoder layers.
            hidden: [B,N,d] final decoder hidden states.
        Returns:
            subjects, objects: [B,S,N,d], sources ordered as the chosen layers, then the final hidden states.
        """
        subjects = [proj(queries[:, layer]) for proj, layer in zip(self.proj_q, self.layer_indices)]
        objects = [proj(keys[:, layer]) for proj, layer in zip(self.proj_k, self.layer_indices)]
        if self.use_final_hidden:
            subjects.append(self.final_sub_proj(hidden))
            objects.append(self.final_obj_proj(hidden))
        return torch.stack(subjects, 1), torch.stack(objects, 1)

    def forward(self, queries: Tensor, keys: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """queries, keys [B,L,N,d], hidden [B,N,d] -> rel logits [B,N,N,R], connectivity [B,N,N] | None,
        gates [B,N,N,S]. The two MLPs run one after the other: one pair-sized hidden layer lives at a time;
        at inference, for a linear relation function, they run over bands of subjects (`subject_bands`), so
        that it is one band's hidden layer."""
        subjects, objects = self.source_features(queries, keys, hidden)
        if self.function not in ("concat", "sum"):
            gated_sum, gates = self._gated_sum_explicit(subjects, objects)
            rel_logits = self.rel_predictor(self.rel_predictor.layers[0](gated_sum), start=1)
            connectivity = None
            if self.connectivity_layer is not None:
                connectivity = self.connectivity_layer(self.connectivity_layer.layers[0](gated_sum), start=1)
            return rel_logits, None if connectivity is None else connectivity[..., 0], gates
        gates = self._gates_factorized(subjects, objects)
        mlps = [self.rel_predictor] + (
            [self.connectivity_layer] if self.connectivity_layer is not None else []
        )
        outputs = []
        for mlp in mlps:
            bands = [
                mlp(self._first_layer_factorized(mlp.layers[0], subjects, objects, gates, rows), start=1)
                for rows in self.subject_bands(subjects, mlp.layers[0].out_features)
            ]
            outputs.append(bands[0] if len(bands) == 1 else torch.cat(bands, 1))
        return outputs[0], outputs[1][..., 0] if len(outputs) > 1 else None, gates

    def subject_bands(self, subjects: Tensor, width: int) -> list[slice]:
        """Bands of subject rows whose [B,rows,N,width] hidden layer holds at most PAIR_BAND_BYTES; one band
        (every row) when it fits, or unless eager float32 inference (training keeps one graph; a traced
        export keeps one shape-generic graph)."""
        batch, _, queries, _ = subjects.shape
        row_bytes = batch * queries * width * subjects.element_size()
        banded = eager_float32_inference(subjects)
        rows = max(1, min(queries, PAIR_BAND_BYTES // row_bytes)) if banded else queries
        return [slice(start, start + rows) for start in range(0, queries, rows)]

    def _gates_factorized(self, subjects: Tensor, objects: Tensor) -> Tensor:
        """Gates [B,N,N,S] of a linear relation function from per-object gate terms."""
        gate_a, gate_b = split_linear_weight(self.function, self.rel_predictor_gate.weight, self.d_model)
        gate_logits = (
            (subjects @ gate_a.T)[..., :, None, 0]
            + (objects @ gate_b.T)[..., None, :, 0]
            + self.rel_predictor_gate.bias
        )  # [B,S,N,N]
        return gate_logits.sigmoid().permute(0, 2, 3, 1)

    def _first_layer_factorized(
        self, layer: nn.Linear, subjects: Tensor, objects: Tensor, gates: Tensor, rows: slice
    ) -> Tensor:
        """layer(Σ_s g_s(i,j) R_s(i,j)) [B,n,N,H] for the subjects i in `rows` (n of them) and every object j,
        for a linear relation function, without pair features.

        subjects, objects [B,S,N,d]; gates [B,N,N,S].
        """
        batch, sources, queries, _ = subjects.shape
        weight_a, weight_b = split_linear_weight(self.function, layer.weight, self.d_model)
        width = weight_a.shape[0]
        gates = gates[:, rows]  # [B,n,N,S]
        count = gates.shape[1]
        projected_a = (
            (subjects[:, :, rows] @ weight_a.T).transpose(1, 2).reshape(batch * count, sources, width)
        )
        projected_b = (objects @ weight_b.T).transpose(1, 2).reshape(batch * queries, sources, width)
        # subject term (+ bias): for each (b, i): gates[b, i, :, :] [N_j, S] @ projected_a[b, i] [S, H]
        result = torch.baddbmm(layer.bias, gates.reshape(batch * count, queries, sources), projected_a)
        # object term: for each (b, j): gates[b, :, j, :] [n_i, S] @ projected_b[b, j] [S, H]
        object_term = torch.bmm(gates.transpose(1, 2).reshape(batch * queries, count, sources), projected_b)
        return add_(
            result.view(batch, count, queries, width),
            object_term.view(batch, queries, count, width).transpose(1, 2),
        )

    def _gated_sum_explicit(self, subjects: Tensor, objects: Tensor) -> tuple[Tensor, Tensor]:
        """Σ_s g_s R_s [B,N,N,F] and gates [B,N,N,S] from explicit pair features (any relation function)."""
        gated_sum, gates = None, []
        for source in range(subjects.shape[1]):
            features = pair_features(self.function, subjects[:, source], objects[:, source], self.heads)
            gate = self.rel_predictor_gate(features).sigmoid()  # [B,N,N,1]
            gates.append(gate[..., 0])
            gated_sum = gate * features if gated_sum is None else gated_sum + gate * features
        return gated_sum, torch.stack(gates, -1)
