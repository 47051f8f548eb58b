"""`SceneGraphPredictor.batches` (the grouping that `iter_predict` and `egtr predict` on many processes share)
against the loop it was taken out of: on random sequences of sizes and unreadable inputs, the same batches in
the same order, for several batch sizes."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from egtr.inference.predictor import PreparedImage, SceneGraphPredictor
from tests.inference.conftest import small_model

SHAPES = ((3, 8, 12), (3, 12, 8), (3, 10, 10))


def reference_batches(items: list[PreparedImage], batch_size: int) -> list[list[int]]:
    """The former in-order loop of `_results`, reporting the batches it ran (indices), and unreadable
    inputs as batches of one, in the order they became done."""
    waiting: deque[PreparedImage] = deque()
    groups: dict[tuple, list[PreparedImage]] = {}
    done: set[int] = set()
    order: list[list[int]] = []

    def run(batch):
        order.append([item.index for item in batch])
        done.update(item.index for item in batch)

    for item in items:
        waiting.append(item)
        if item.error is not None:
            run([item])
        else:
            key = tuple(item.pixel_values.shape[1:])
            groups.setdefault(key, []).append(item)
            if len(groups[key]) == batch_size:
                run(groups.pop(key))
        if len(waiting) > 4 * batch_size and waiting[0].index not in done:
            run(groups.pop(tuple(waiting[0].pixel_values.shape[1:])))
        while waiting and waiting[0].index in done:
            waiting.popleft()
    for group in groups.values():
        run(group)
    return order


def random_inputs(count: int, seed: int) -> list[PreparedImage]:
    rng = np.random.default_rng(seed)
    items = []
    for index in range(count):
        if rng.random() < 0.1:
            items.append(PreparedImage(index, f"bad{index}", error="corrupt"))
        else:
            shape = SHAPES[rng.choice(len(SHAPES), p=[0.7, 0.2, 0.1])]
            items.append(PreparedImage(index, f"image{index}", pixel_values=torch.zeros(shape)))
    return items


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_batches_are_those_of_the_former_loop(batch_size):
    predictor = SceneGraphPredictor(small_model(), batch_size=batch_size)
    for seed in range(20):
        items = random_inputs(60, seed)
        batches = [[item.index for item in batch] for batch in predictor.batches(items)]
        assert batches == reference_batches(items, batch_size), seed
