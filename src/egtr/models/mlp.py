"""A plain multi-layer perceptron with ReLU between layers.

DETR's MLP (architecture.md §10), with its parameter names `layers.{i}`.
"""

from __future__ import annotations

from torch import Tensor, nn

from egtr.models.inplace import relu_


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out) for d_in, d_out in zip(dims, [*dims[1:], output_dim])
        )

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """[..., input_dim] -> [..., output_dim].

        With `start` > 0, x is the pre-activation output of layer `start - 1`, computed elsewhere and handed
        over: ReLU is applied to it (in place where that is free, `inplace.relu_`) and the remaining layers
        run.
        """
        if start:
            x = relu_(x)
        for index, layer in enumerate(self.layers[start:], start=start):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = relu_(x)  # on the fresh output of a linear layer
        return x
