"""The upload budget (bytes of bodies in flight) and the decoded-image budget, on their own.

The upload budget is run against a simulation of many concurrent bodies of random sizes arriving in
random reads, each freed a little after it completes: the held bytes never pass the limit, and every body
finishes (the oldest-body reserve rules out a deadlock), for several seeds and limits down to the smallest
allowed. Stalled bodies are dropped, most stalled first, only while another waits.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from egtr.serve.decoding import FifoBudget
from egtr.serve.memory_bound import MAX_CHUNK
from egtr.serve.upload_budget import UploadBudget

KIB = 1024


async def simulate(seed: int, limit: int, max_body: int, bodies: int) -> tuple[int, int]:
    rng = random.Random(seed)
    budget = UploadBudget(limit, max_body, max_stall_s=60)
    peak = 0

    async def body() -> None:
        nonlocal peak
        await asyncio.sleep(rng.random() * 0.02)
        ticket, remaining = budget.open(), rng.randint(1, max_body)
        while remaining:
            read = min(remaining, rng.randint(1, MAX_CHUNK))
            await budget.take(ticket, read)
            peak = max(peak, budget.held)
            remaining -= read
            await asyncio.sleep(0)
        budget.arrived(ticket)
        await asyncio.sleep(rng.random() * 0.005)  # decoding
        budget.close(ticket)

    await asyncio.wait_for(asyncio.gather(*(body() for _ in range(bodies))), 60)
    return peak, budget.held


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("extra", [0, 2 * MAX_CHUNK, 3 * 1024 * KIB])
def test_bodies_never_pass_the_limit_and_all_finish(seed, extra):
    max_body = 1024 * KIB
    limit = max_body + MAX_CHUNK + extra  # down to the smallest budget allowed
    peak, left = asyncio.run(simulate(seed, limit, max_body, bodies=40))
    assert peak <= limit and left == 0


def test_a_stalled_body_is_dropped_only_when_another_waits():
    async def scenario():
        budget = UploadBudget(4 * MAX_CHUNK, MAX_CHUNK, max_stall_s=0.05)
        first, second = budget.open(), budget.open()
        await budget.take(first, 2 * MAX_CHUNK)  # the oldest, then silent
        await asyncio.sleep(0.1)
        assert not first.dropped.done()  # nobody needs its bytes yet
        waiting = asyncio.create_task(budget.take(second, MAX_CHUNK))  # no room beside the first + reserve
        await asyncio.wait_for(asyncio.shield(first.dropped), 5)
        assert not waiting.done() and not second.dropped.done()
        budget.close(first)  # what its reader does when it sees `dropped`
        assert await asyncio.wait_for(waiting, 5) > 0
        return budget.report(), budget.held

    report, held = asyncio.run(scenario())
    assert report["stalled_bodies_dropped"] == 1 and held == MAX_CHUNK


def test_the_smallest_limit_holds_one_body_and_a_read():
    with pytest.raises(ValueError, match="cannot hold one body"):
        UploadBudget(1000, 1000, 5)


def test_the_decoded_budget_is_first_come_first_served_and_survives_cancellation():
    async def scenario():
        budget, order = FifoBudget(10), []

        async def user(name: str, count: int, hold: float) -> None:
            await budget.acquire(count)
            order.append(name)
            await asyncio.sleep(hold)
            budget.release(count)

        first = asyncio.create_task(user("big", 8, 0.05))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(user("large", 9, 0))  # waits for the big one
        await asyncio.sleep(0)
        small = asyncio.create_task(user("small", 1, 0))  # would fit now, but comes after "large"
        cancelled = asyncio.create_task(budget.acquire(5))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.gather(first, waiting, small)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        with pytest.raises(ValueError, match="above the whole budget"):
            await budget.acquire(11)
        return order, budget.held

    order, held = asyncio.run(scenario())
    assert order == ["big", "large", "small"] and held == 0
