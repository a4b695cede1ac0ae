"""Projection leases: which process runs a projector, when several could.

A projector must be active in one place at a time, or two workers would apply the
same events twice. A worker therefore runs a projector only while it holds the
projector's lease. On PostgreSQL the lease is an advisory lock held on a connection
of its own (see `PostgresLeases`), so it spans processes and dies with its holder;
elsewhere it is `InProcessLeases`, a lock within one process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable
from weakref import WeakKeyDictionary

from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import LeaseLostError
from eventcore._persistence._store import EventStore, EventStoreSession

__all__ = ["InProcessLeases", "ProjectionLease", "ProjectionLeases", "leases_for"]


class ProjectionLease(Protocol):
    """The right, held by this process, to run one projector (see `ProjectionLeases`)."""

    @property
    def name(self) -> str:
        """The projector's name."""
        ...

    async def guard(
        self,
        session: EventStoreSession,
        checkpoint: LogPosition,
        advance_to: LogPosition | None = None,
    ) -> bool:
        """Make sure a batch may be applied in `session`, before it writes anything.

        Called first in each batch's transaction, with the checkpoint the holder
        believes is stored. Raises [`LeaseLostError`][eventcore.LeaseLostError] (and
        the batch must be rolled back) when the lease is no longer held, or when the
        stored checkpoint is not `checkpoint` (someone else moved it). So a holder that
        lost its lease without noticing fails its batch instead of applying it twice.

        A worker passes `advance_to`, the batch's last position: a lease may then move
        the stored checkpoint there in the same step (in `session`'s transaction, so
        only if the batch commits) and return `True`. It returns `False` when it did
        not, and the caller saves the checkpoint itself before committing.
        """
        ...


@runtime_checkable
class ProjectionLeases(Protocol):
    """Where leases on projectors are taken: one holder per projector name at a time."""

    def hold(self, name: str) -> AbstractAsyncContextManager[ProjectionLease | None]:
        """Try once to take the lease on projector `name`, and hold it during the block.

        Yields `None` at once when someone else holds it. While the block runs, the
        lease is watched: when it is lost (its connection died, say), the block is
        cancelled and [`LeaseLostError`][eventcore.LeaseLostError] raised after it.
        Leaving the block releases the lease.
        """
        ...


@runtime_checkable
class _ProvidesLeases(Protocol):
    def projection_leases(self) -> ProjectionLeases: ...


class InProcessLeases:
    """Leases within one process: for the in-memory store and SQLite.

    Two workers in one process on the same store never run one projector at the same
    time; workers in different processes do not see each other's leases. Run one
    worker process on these stores (SQLite allows one writer at a time anyway).
    """

    def __init__(self) -> None:
        self._held: set[str] = set()

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[ProjectionLease | None]:
        """Take the lease on `name` if no task of this process holds it."""
        if name in self._held:
            yield None
            return
        self._held.add(name)
        lease = _InProcessLease(name)
        try:
            yield lease
        finally:
            lease.released = True
            self._held.discard(name)


class _InProcessLease:
    def __init__(self, name: str) -> None:
        self._name = name
        self.released = False

    @property
    def name(self) -> str:
        return self._name

    async def guard(
        self,
        session: EventStoreSession,
        checkpoint: LogPosition,
        advance_to: LogPosition | None = None,
    ) -> bool:
        if self.released:
            raise LeaseLostError(f"the lease on projector {self._name!r} was released")
        return False


_shared: WeakKeyDictionary[EventStore, InProcessLeases] = WeakKeyDictionary()


def leases_for(store: EventStore) -> ProjectionLeases:
    """The store's own leases (`store.projection_leases()`), else in-process ones.

    Stores without leases of their own get one `InProcessLeases` per store object,
    shared by every worker of the process.
    """
    if isinstance(store, _ProvidesLeases):
        return store.projection_leases()
    leases = _shared.get(store)
    if leases is None:
        leases = _shared[store] = InProcessLeases()
    return leases
