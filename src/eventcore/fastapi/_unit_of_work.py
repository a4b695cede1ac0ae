"""`RequestUnitOfWork`: a unit of work per request, committed before the response is sent.

FastAPI runs a `yield` dependency's exit code after the response is sent, unless the
dependency is declared with `scope="function"`: then it runs once the endpoint has
returned and its response is built, before a byte of it goes out. The unit of work
commits there, so a failed commit is answered with its error (409, 412, 503...) and
never with the 200 the endpoint meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from eventcore._application._projector import Projector
from eventcore._application._unit_of_work import UnitOfWork
from eventcore._domain._aggregate import Aggregate
from eventcore._domain._integration import IntegrationMapping
from eventcore._exceptions import (
    PreconditionFailedError,
    UnitOfWorkError,
    WrongExpectedVersionError,
)
from eventcore._persistence._store import AppendResult, EventStore
from eventcore.fastapi._preconditions import etag, if_match_holds, if_none_match_holds

__all__ = ["LOG_POSITION_HEADER", "RequestUnitOfWork", "commit_headers"]

LOG_POSITION_HEADER = "Log-Position"
"""The response header with the global log position of the request's last event."""

A = TypeVar("A", bound=Aggregate)


class RequestUnitOfWork(UnitOfWork):
    """The unit of work of one HTTP request ([`UnitOfWorkDep`][eventcore.fastapi.UnitOfWorkDep]).

    Everything a `UnitOfWork` does, plus the request's resource: the aggregate loaded
    with [`get`][eventcore.fastapi.RequestUnitOfWork.get] (or created with
    [`add`][eventcore.fastapi.RequestUnitOfWork.add]) is checked against the request's
    `If-Match` / `If-None-Match`, and its version after the commit is the response's
    `ETag`. Other aggregates are loaded with `uow.repository(...)` as usual.

    The commit happens for you once the endpoint returns; calling `commit()` yourself
    is allowed, except in an idempotent request (whose commit stores the response).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        projectors: Sequence[Projector] = (),
        mappings: Sequence[IntegrationMapping] = (),
        if_match: str | None = None,
        if_none_match: str | None = None,
        deferred: bool = False,
    ) -> None:
        super().__init__(store, projectors=projectors, mappings=mappings)
        self._if_match = if_match
        self._if_none_match = if_none_match
        self._deferred = deferred
        self.resource: Aggregate | None = None
        """The aggregate the request is about (loaded with `get`, created with `add`)."""
        self.results: list[AppendResult] | None = None
        """What the commit appended (`None` before it)."""

    @property
    def committed(self) -> bool:
        """Whether the unit of work has committed."""
        return self.results is not None

    async def get(self, aggregate_type: type[A], aggregate_id: str) -> A:
        """Load the request's resource and check the request's preconditions on it.

        Raises [`AggregateNotFoundError`][eventcore.AggregateNotFoundError] (404) when it
        does not exist, and [`PreconditionFailedError`][eventcore.PreconditionFailedError]
        (412) when `If-Match` names another version (or `If-None-Match` the current one).
        """
        aggregate = await self.repository(aggregate_type).get(aggregate_id)
        self._check(aggregate.id, aggregate.version)
        self._resource(aggregate)
        return aggregate

    async def add(self, aggregate: Aggregate) -> None:
        """Create the request's resource: `aggregate` is new; committing it fails with a
        conflict (409, or 412 under `If-None-Match: *`) if its stream exists already."""
        self._check(aggregate.id, 0)
        await self.repository(type(aggregate)).add(aggregate)
        self._resource(aggregate)

    def _resource(self, aggregate: Aggregate) -> None:
        if self.resource is not None and self.resource is not aggregate:
            raise UnitOfWorkError(
                f"the request's resource is {self.resource!r} already; load other "
                "aggregates with uow.repository(...)"
            )
        self.resource = aggregate

    def _check(self, stream_id: str, version: int) -> None:
        if self._if_match is not None and not if_match_holds(self._if_match, version):
            raise PreconditionFailedError(stream_id, self._if_match, version)
        if self._if_none_match is not None and not if_none_match_holds(
            self._if_none_match, version
        ):
            raise PreconditionFailedError(
                stream_id, f"not {self._if_none_match}", version, "If-None-Match"
            )

    async def commit(self) -> list[AppendResult]:
        """Commit now (the dependency does it for you when the endpoint returns)."""
        if self._deferred:
            raise UnitOfWorkError(
                "an idempotent request commits with its response: let the endpoint return"
            )
        return await self.commit_now()

    async def commit_now(self) -> list[AppendResult]:
        """Commit, turning a conflict on a conditional resource into a failed precondition."""
        if self.resource is None and self._if_match is not None:
            raise UnitOfWorkError(
                "the request has an If-Match, but the endpoint loaded no resource with uow.get()"
            )
        try:
            results = await UnitOfWork.commit(self)
        except WrongExpectedVersionError as error:
            resource = self.resource
            conditional = self._if_match is not None or self._if_none_match is not None
            if resource is not None and conditional and error.stream_id == resource.id:
                header = "If-Match" if self._if_match is not None else "If-None-Match"
                raise PreconditionFailedError(
                    error.stream_id, error.expected, error.actual, header
                ) from error
            raise
        self.results = results
        return results


def commit_headers(
    uow: RequestUnitOfWork, results: Sequence[AppendResult]
) -> list[tuple[bytes, bytes]]:
    """The `ETag` of the request's resource and the `Log-Position` of its last event."""
    headers: list[tuple[bytes, bytes]] = []
    if uow.resource is not None:
        headers.append((b"etag", etag(uow.resource.version).encode()))
    positions = [p for r in results for p in r.global_positions]
    if positions:
        headers.append((LOG_POSITION_HEADER.lower().encode(), str(max(positions)).encode()))
    return headers
