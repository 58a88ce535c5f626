"""Pacing while sending: the shared sending limits (a reservation in the database ledger per
message) and the places among every worker's transactions to one recipient domain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from mailer.delivery import limits as lim

__all__ = ["Pacer", "Place"]


@dataclass(slots=True)
class Place:
    """What a message holds while it is sent: its domain's local and shared places."""

    domain: str
    slot: int | None = None


class Pacer:
    """The shared sending limits: a reservation in the database ledger before each message,
    and a place among every worker's transactions to a destination domain (a local semaphore
    first, so a worker never asks the database for more than its share)."""

    def __init__(
        self,
        limits: lim.SendLimits,
        reserve: Callable[[], Coroutine[Any, Any, float | None]] | None,
        take_slot: Callable[[str], Coroutine[Any, Any, int | None]] | None = None,
        release_slot: Callable[[int], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.limits = limits
        self.reserve = reserve if limits.active else None
        self.per_domain = limits.domain_concurrency
        self.take_slot = take_slot if self.per_domain else None
        self.release_slot = release_slot
        self.domains: dict[str, asyncio.Semaphore] = {}
        # One reservation at a time per worker: the others wait here, not on the lock row.
        self._one = asyncio.Lock()
        self.stopping = False

    @property
    def rate(self) -> float | None:
        return self.limits.rate

    async def acquire(self, domain: str) -> Place | None:
        """Wait for a place; None when the worker stops first (nothing is held then)."""
        place = Place(domain)
        if self.per_domain:
            sem = self.domains.get(domain)
            if sem is None:
                sem = self.domains[domain] = asyncio.Semaphore(self.per_domain)
            await sem.acquire()
        if self.take_slot is not None:
            while place.slot is None:
                if self.stopping:
                    await self.release(place)
                    return None
                place.slot = await self.take_slot(domain)
                if place.slot is None:
                    await asyncio.sleep(0.05)  # another worker's transaction to this domain
        if self.reserve is None:
            return place
        async with self._one:
            while not self.stopping:
                wait = await self.reserve()
                if wait is None:
                    break  # told to stop while the database was away
                if wait <= 0:
                    return place
                # Ask again when a place frees up, or within a few seconds to notice a stop.
                await asyncio.sleep(min(wait, 2.0))
        await self.release(place)
        return None

    async def release(self, place: Place) -> None:
        if place.slot is not None and self.release_slot is not None:
            slot, place.slot = place.slot, None
            await self.release_slot(slot)
        if self.per_domain:
            self.domains[place.domain].release()
