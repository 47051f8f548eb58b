"""A linear probe: how well a set of pair features alone separates related from unrelated pairs.

Logistic regression (L2-regularized, classes weighted to equal total weight) is fitted on the pairs of
one half of the images and scored by ROC AUC on the pairs of the other half, so pairs of one image never
sit on both sides. Features are standardized with the training half's mean and standard deviation;
constant features (e.g. a source whose weights are zero) carry nothing, so such a probe gives every
pair the same score: AUC 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from egtr.studies.statistics import roc_auc

L2_PENALTY = 1e-2  # lambda of the penalty lambda / P * ||w||^2 beside the weighted mean loss (P pairs)
ITERATIONS = 200


@dataclass(frozen=True)
class ProbeResult:
    auc: float | None  # ROC AUC on the held-out pairs (None when a class is missing there)
    train_pairs: int
    test_pairs: int


def fit_logistic_regression(features: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights [F] and bias of a class-balanced L2 logistic regression on features [P,F] (float64)."""
    x = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(positive, dtype=torch.float64)
    num_positive = float(y.sum())
    num_negative = len(y) - num_positive
    sample_weight = torch.where(y > 0, 0.5 / max(num_positive, 1.0), 0.5 / max(num_negative, 1.0))
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=ITERATIONS, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = (
            sample_weight * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        ).sum()
        loss = loss + L2_PENALTY * weight.square().sum() / len(y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().numpy(), float(bias.detach())


def linear_probe(features: np.ndarray, positive: np.ndarray, in_train_half: np.ndarray) -> ProbeResult:
    """Fit on the pairs with `in_train_half`, report the AUC on the others.

    features [P,F], positive [P] bool (related pair), in_train_half [P] bool.
    """
    features = np.asarray(features, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    train = np.asarray(in_train_half, dtype=bool)
    test = ~train
    if positive[train].all() or not positive[train].any():
        return ProbeResult(None, int(train.sum()), int(test.sum()))
    mean = features[train].mean(0)
    std = features[train].std(0)
    std[std < 1e-12] = np.inf  # a constant feature becomes 0 everywhere
    standardized = (features - mean) / std
    weight, bias = fit_logistic_regression(standardized[train], positive[train])
    scores = standardized[test] @ weight + bias
    return ProbeResult(roc_auc(scores, positive[test]), int(train.sum()), int(test.sum()))
