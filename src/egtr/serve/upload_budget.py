"""The bytes of request bodies in flight: a budget that no client can exhaust without sending the bytes.

Each read of a body is charged when it arrives (`take`); its bytes stay charged until the body is freed
(`close`), after its image is decoded. A body whose read does not fit waits, holding that one read, and
reads no more meanwhile: the client's further bytes stay in the kernel (TCP flow control), not in this
process. Only bytes that arrived count, so clients that send headers and stall hold nothing, and a slow
client holds only what it sent.

No deadlock: every body but the oldest one still arriving may only take budget while one whole largest
body (plus a read) remains free, and the oldest may use that reserve. The oldest can therefore always
finish; once it has, and its bytes are freed, the next oldest finds the reserve free again.
"""

from __future__ import annotations

import asyncio
import itertools

from egtr.serve.memory_bound import MAX_CHUNK


class Ticket:
    """One body's share: `held` bytes charged, `arriving` while its body is being read."""

    __slots__ = ("arriving", "held", "number")

    def __init__(self, number: int) -> None:
        self.number, self.held, self.arriving = number, 0, True


class UploadBudget:
    """At most `limit` bytes of bodies at once; `max_body` is the largest body (the oldest's reserve)."""

    def __init__(self, limit: int, max_body: int) -> None:
        if limit < max_body + MAX_CHUNK:
            raise ValueError(f"limit {limit} cannot hold one body of {max_body} bytes and a read")
        self.limit, self.reserve_bytes = limit, max_body + MAX_CHUNK
        self.held = 0
        self.waiting = 0  # bodies waiting for budget now
        self.waits = 0  # how many times a body had to wait, since the start
        self._arriving: dict[int, Ticket] = {}  # insertion order = age
        self._numbers = itertools.count()
        self._waiters: list[asyncio.Future] = []

    def open(self) -> Ticket:
        ticket = Ticket(next(self._numbers))
        self._arriving[ticket.number] = ticket
        return ticket

    def fits(self, ticket: Ticket, count: int) -> bool:
        oldest = next(iter(self._arriving), None) == ticket.number
        return self.held + count <= self.limit - (0 if oldest else self.reserve_bytes)

    async def take(self, ticket: Ticket, count: int) -> float:
        """Charge `count` bytes to `ticket`, waiting until they fit; returns the seconds waited."""
        if self.fits(ticket, count):
            self._charge(ticket, count)
            return 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.waiting += 1
        self.waits += 1
        try:
            while not self.fits(ticket, count):
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        finally:
            self.waiting -= 1
        self._charge(ticket, count)
        return loop.time() - started

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
        }

    def _charge(self, ticket: Ticket, count: int) -> None:
        ticket.held += count
        self.held += count

    def _notify(self) -> None:
        """Budget was freed: every waiting body looks again."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
