"""How many gRPC request messages are read at once, and who waits for a turn.

grpcio assembles a message whole (and inflates it, when compressed) before handing it over, so the receiver cannot
count its bytes as they arrive the way the HTTP receiver does. What it can bound is how many messages are being read
at once: a stream that has no read slot holds only its HTTP/2 flow-control window (64 KiB), a stream with one holds
up to the request limit.

Slots go round-robin over the connections that wait (each connection's calls in arrival order), so a client that
opens many calls on a few connections cannot queue ahead of everyone else. A slot held by a sender that stalls
would still keep the others waiting until the read timeout; so while others wait, a read that has run longer than
`preempt_after` seconds is told to give its slot up (`preempted` is set) and the receiver answers it
RESOURCE_EXHAUSTED with a retry delay. On loopback a whole 32 MiB message arrives in well under a second, so only a
stalled or very slow sender is preempted, and only while others are waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    """One message being read: when its read started, and whether it was asked to give the slot up."""

    started: float
    preempted: asyncio.Event = field(default_factory=asyncio.Event)


class ReadSlots:
    """At most `count` reads at once; at most `max_waiting` calls waiting for one (more are refused)."""

    def __init__(self, count: int, *, max_waiting: int, preempt_after: float) -> None:
        self.count = count
        self.max_waiting = max_waiting
        self.preempt_after = preempt_after
        self._reading: list[Slot] = []  # oldest first
        # connection -> its waiting calls; the connection served last moves to the end
        self._waiting: dict[str, collections.deque[asyncio.Future[Slot]]] = {}
        self._waiting_count = 0
        self.preemptions = 0

    @property
    def reading(self) -> int:
        return len(self._reading)

    @property
    def waiting(self) -> int:
        return self._waiting_count

    async def acquire(self, deadline: float, connection: str = "") -> Slot | None:
        """A slot, or None when too many calls wait already or none came free before `deadline` (loop time).
        `connection` names the caller's connection (grpc's peer) for the round-robin."""
        loop = asyncio.get_running_loop()
        if len(self._reading) < self.count and not self._waiting_count:
            return self._take(loop.time())
        if self._waiting_count >= self.max_waiting:
            return None
        turn: asyncio.Future[Slot] = loop.create_future()
        self._waiting.setdefault(connection, collections.deque()).append(turn)
        self._waiting_count += 1
        granted: Slot | None = None
        try:
            while True:
                now = loop.time()
                self._preempt_stale(now)
                if turn.done():
                    granted = turn.result()
                    return granted
                if now >= deadline:
                    return None
                # wake up when a slot is handed over, or when the oldest read becomes preemptible
                wake = deadline
                if self._reading:
                    wake = min(wake, self._reading[0].started + self.preempt_after)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(turn), max(wake - now, 0.01))
        finally:
            if not turn.done():
                self._forget(connection, turn)
            elif granted is None:
                self.release(turn.result())  # handed a slot too late (timed out, cancelled): pass it on

    def release(self, slot: Slot) -> None:
        """Give a slot back: it goes to the first waiting call of the next connection in turn."""
        if slot in self._reading:
            self._reading.remove(slot)
        while self._waiting and len(self._reading) < self.count:
            connection, calls = next(iter(self._waiting.items()))
            turn = calls.popleft()
            self._waiting_count -= 1
            del self._waiting[connection]
            if calls:
                self._waiting[connection] = calls  # to the end of the round
            turn.set_result(self._take(asyncio.get_running_loop().time()))

    def _forget(self, connection: str, turn: "asyncio.Future[Slot]") -> None:
        calls = self._waiting[connection]
        calls.remove(turn)
        self._waiting_count -= 1
        if not calls:
            del self._waiting[connection]

    def _take(self, now: float) -> Slot:
        slot = Slot(now)
        self._reading.append(slot)
        return slot

    def _preempt_stale(self, now: float) -> None:
        # one preemption per waiting call at most, oldest read first
        owed = self._waiting_count - sum(1 for slot in self._reading if slot.preempted.is_set())
        for slot in self._reading:
            if owed <= 0 or now - slot.started < self.preempt_after:
                break
            if not slot.preempted.is_set():
                slot.preempted.set()
                self.preemptions += 1
                owed -= 1
