"""glibc heap tuning: with freed blocks kept, a repeated computation touches no new pages.

Measured in a fresh process: what earlier tests left in this process's heap would decide the result.
"""

import json
import subprocess
import sys

MEASUREMENT = """
import json, resource
import torch
from egtr.memory import keep_freed_memory, release_freed_memory

def page_faults_of_a_computation():
    # page faults of a few matmuls whose 1 MiB results are freed and allocated again
    x = torch.randn(512, 512)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        y = torch.relu(x @ x)
        z = y + 1
        del y
        z = z * 2
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

applied = [release_freed_memory()]
released = [page_faults_of_a_computation() for _ in range(3)]
applied.append(keep_freed_memory())
kept = [page_faults_of_a_computation() for _ in range(3)]
print(json.dumps({"applied": applied, "released": released, "kept": kept}))
"""


def test_freed_blocks_are_reused_only_in_keep_mode():
    completed = subprocess.run(
        [sys.executable, "-c", MEASUREMENT], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert all(result["applied"])
    assert min(result["released"]) > 1000  # fresh pages for every result
    assert result["kept"][-1] < result["released"][-1] / 4  # mostly the heap blocks of earlier rounds, reused
