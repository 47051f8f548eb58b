"""Quota and entry selection: hardest by logit, uniform random, per-image quotas."""

from __future__ import annotations

import torch

from egtr.training.sampling import quotas, select_entries


def test_quotas() -> None:
    positives = torch.tensor([0, 2, 3])
    candidates = torch.tensor([50, 100, 200])
    assert quotas(positives, candidates, 80).tolist() == [0, 100, 200]  # min(80 x positives, candidates)
    assert quotas(positives, candidates, 10).tolist() == [0, 20, 30]
    assert quotas(positives, candidates, 0).tolist() == [0, 0, 0]
    assert quotas(positives, candidates, None).tolist() == [50, 100, 200]  # None: every candidate


def test_hardest_entries_are_the_largest_candidate_logits() -> None:
    logits = torch.tensor(
        [
            [5.0, 1.0, 4.0, -2.0, 3.0, 0.5],
            [0.1, 9.0, 0.3, 0.2, -1.0, 8.0],
        ]
    )
    excluded = torch.tensor(
        [
            [True, False, False, False, False, False],  # 5.0 is not a candidate (e.g. a positive)
            [False, True, False, False, False, True],  # 9.0 and 8.0 are not candidates
        ]
    )
    chosen = select_entries(logits, excluded, torch.tensor([2, 3]), largest=True)
    # row 0: the 2 largest candidates are 4.0 (index 2) and 3.0 (index 4)
    # row 1: the 3 largest candidates are 0.3 (index 2), 0.2 (index 3), 0.1 (index 0); flat offset 6
    assert sorted(chosen.tolist()) == [2, 4, 6 + 0, 6 + 2, 6 + 3]


def test_nothing_to_choose() -> None:
    logits = torch.randn(2, 4)
    chosen = select_entries(logits, torch.zeros(2, 4, dtype=torch.bool), torch.tensor([0, 0]), largest=True)
    assert chosen.numel() == 0 and chosen.dtype == torch.long


def test_broadcast_exclusion_mask() -> None:
    logits = torch.arange(12.0).reshape(1, 2, 2, 3)  # [B, N, N, R]
    matched_pair = torch.tensor([[[[True], [False]], [[False], [False]]]])  # [B, N, N, 1]
    chosen = select_entries(logits, matched_pair, torch.tensor([4]), largest=True)
    assert sorted(chosen.tolist()) == [8, 9, 10, 11]  # the largest logits outside pair (0, 0)


def test_random_choice_is_a_uniform_subset_of_the_candidates() -> None:
    torch.manual_seed(0)
    logits = torch.zeros(1, 8)
    excluded = torch.tensor([[False, True, False, False, True, False, True, False]])
    counts = torch.zeros(8)
    draws = 3000
    for _ in range(draws):
        chosen = select_entries(logits, excluded, torch.tensor([2]), largest=False)
        assert len(chosen) == 2 and len(set(chosen.tolist())) == 2
        counts[chosen] += 1
    assert counts[excluded[0]].sum() == 0
    frequencies = counts[~excluded[0]] / draws
    torch.testing.assert_close(frequencies, torch.full((5,), 2 / 5), rtol=0, atol=0.04)


def test_random_choice_follows_the_global_seed() -> None:
    logits, excluded = torch.zeros(2, 50), torch.zeros(2, 50, dtype=torch.bool)
    torch.manual_seed(7)
    first = select_entries(logits, excluded, torch.tensor([5, 3]), largest=False)
    torch.manual_seed(7)
    second = select_entries(logits, excluded, torch.tensor([5, 3]), largest=False)
    assert torch.equal(first, second)
