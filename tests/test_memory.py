"""glibc heap tuning: with freed blocks kept, a repeated computation touches no new pages."""

import resource

import torch

from egtr.memory import keep_freed_memory, release_freed_memory


def page_faults_of_a_computation() -> int:
    """Page faults of a few matmuls whose 1 MiB results are freed and allocated again."""
    x = torch.randn(512, 512)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        y = torch.relu(x @ x)
        z = y + 1
        del y
        z = z * 2
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_blocks_are_reused_only_in_keep_mode():
    try:
        assert release_freed_memory()
        released = [page_faults_of_a_computation() for _ in range(3)]
        assert keep_freed_memory()
        kept = [page_faults_of_a_computation() for _ in range(3)]
        assert min(released) > 1000  # fresh pages for every result
        assert kept[-1] < released[-1] / 4  # mostly the heap blocks of earlier rounds, reused
    finally:
        keep_freed_memory()
