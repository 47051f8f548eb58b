"""The bytes of request bodies in flight: a budget that no client can exhaust without sending the bytes.

Each read of a body is charged when it arrives (`take`); its bytes stay charged until the body is freed
(`close`), after its image is decoded. A body whose read does not fit waits, holding that one read, and
reads no more meanwhile: the client's further bytes stay in the kernel (TCP flow control), not in this
process. Only bytes that arrived count, so clients that send headers and stall hold nothing, and a slow
client holds only what it sent.

While a body waits, bodies that have sent nothing for `max_stall_s` (and are not themselves waiting) are
dropped, most stalled first, until the waiting read fits: their readers see `ticket.dropped` and answer
408. So clients that sent part of a body and stopped hold their bytes only until someone needs them.

No deadlock: every body but the oldest one still arriving may only take budget while one whole largest
body (plus a read) remains free, and the oldest may use that reserve. The oldest can therefore always
finish; once it has, and its bytes are freed, the next oldest finds the reserve free again.
"""

from __future__ import annotations

import asyncio
import itertools

from egtr.serve.memory_bound import MAX_CHUNK

POLL_S = 0.25  # how often a waiting body looks for stalled ones again


class Ticket:
    """One body's share: `held` bytes charged; `arriving` while its body is being read, `waiting` while it
    waits for budget; `progress`: when its last read arrived; `dropped` is set when it must give up."""

    __slots__ = ("arriving", "dropped", "held", "number", "progress", "waiting")

    def __init__(self, number: int, now: float, dropped: asyncio.Future) -> None:
        self.number, self.held, self.arriving, self.waiting = number, 0, True, False
        self.progress, self.dropped = now, dropped


class UploadBudget:
    """At most `limit` bytes of bodies at once; `max_body` is the largest body (the oldest's reserve)."""

    def __init__(self, limit: int, max_body: int, max_stall_s: float) -> None:
        if limit < max_body + MAX_CHUNK:
            raise ValueError(f"limit {limit} cannot hold one body of {max_body} bytes and a read")
        self.limit, self.reserve_bytes, self.max_stall_s = limit, max_body + MAX_CHUNK, max_stall_s
        self.held = 0
        self.waiting = 0  # bodies waiting for budget now
        self.waits = 0  # how many times a body had to wait, since the start
        self.dropped = 0  # stalled bodies dropped for one that waited, since the start
        self._arriving: dict[int, Ticket] = {}  # insertion order = age
        self._numbers = itertools.count()
        self._waiters: list[asyncio.Future] = []

    def open(self) -> Ticket:
        loop = asyncio.get_running_loop()
        ticket = Ticket(next(self._numbers), loop.time(), loop.create_future())
        self._arriving[ticket.number] = ticket
        return ticket

    def fits(self, ticket: Ticket, count: int) -> bool:
        oldest = next(iter(self._arriving), None) == ticket.number
        return self.held + count <= self.limit - (0 if oldest else self.reserve_bytes)

    async def take(self, ticket: Ticket, count: int) -> float:
        """Charge `count` bytes (a read that arrived) to `ticket`, waiting until they fit; returns the
        seconds waited."""
        loop = asyncio.get_running_loop()
        started = ticket.progress = loop.time()
        if self.fits(ticket, count):
            self._charge(ticket, count)
            return 0.0
        ticket.waiting = True
        self.waiting += 1
        self.waits += 1
        try:
            while not self.fits(ticket, count):
                self._drop_stalled(ticket, count, loop.time())
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await asyncio.wait(
                        (waiter, ticket.dropped), timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                if ticket.dropped.done():
                    return loop.time() - started  # its reader gives up
        finally:
            ticket.waiting = False
            self.waiting -= 1
        self._charge(ticket, count)
        ticket.progress = loop.time()
        return ticket.progress - started

    def arrived(self, ticket: Ticket) -> None:
        """The body is complete: it keeps its bytes but no longer needs the oldest's reserve."""
        if self._arriving.pop(ticket.number, None) is not None:
            ticket.arriving = False
            self._notify()

    def close(self, ticket: Ticket) -> None:
        """Free everything the body holds."""
        self._arriving.pop(ticket.number, None)
        ticket.arriving = False
        self._charge(ticket, -ticket.held)
        self._notify()

    def report(self) -> dict:
        return {
            "upload_bytes_in_flight": self.held,
            "bodies_arriving": len(self._arriving),
            "bodies_waiting_for_budget": self.waiting,
            "budget_waits": self.waits,
            "stalled_bodies_dropped": self.dropped,
        }

    def _drop_stalled(self, waiting: Ticket, count: int, now: float) -> None:
        """Drop bodies silent for `max_stall_s`, most stalled first, until `waiting`'s read would fit."""
        stalled = sorted(
            (
                ticket
                for ticket in self._arriving.values()
                if ticket is not waiting
                and not ticket.waiting
                and not ticket.dropped.done()
                and ticket.held
                and now - ticket.progress >= self.max_stall_s
            ),
            key=lambda ticket: ticket.progress,
        )
        freed = 0
        oldest = next(iter(self._arriving), None) == waiting.number
        needed = self.held + count - (self.limit - (0 if oldest else self.reserve_bytes))
        for ticket in stalled:
            if freed >= needed:
                break
            ticket.dropped.set_result(None)
            self.dropped += 1
            freed += ticket.held

    def _charge(self, ticket: Ticket, count: int) -> None:
        ticket.held += count
        self.held += count

    def _notify(self) -> None:
        """Budget was freed: every waiting body looks again."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
