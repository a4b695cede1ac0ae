"""The dependencies an endpoint declares: the store, the unit of work, a consistent read."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from eventcore._application._projector import Projector
from eventcore._domain._metadata import _context, current_context
from eventcore._exceptions import (
    IdempotencyKeyError,
    PreconditionRequiredError,
    UnitOfWorkError,
)
from eventcore._persistence._idempotency import check_key
from eventcore._persistence._store import EventStore
from eventcore.fastapi._idempotency import Replay, deferred_commit, fingerprint
from eventcore.fastapi._middleware import state_of
from eventcore.fastapi._unit_of_work import RequestUnitOfWork, commit_headers
from fastapi import Depends, Header, Request

__all__ = [
    "MIN_POSITION_HEADER",
    "StoreDep",
    "UnitOfWorkDep",
    "consistent_read",
    "event_store",
    "set_actor",
    "unit_of_work",
]

MIN_POSITION_HEADER = "Min-Log-Position"
"""The request header naming the log position a read must reflect (read-your-writes)."""


async def event_store(request: Request) -> EventStore:
    """The service's event store (a dependency)."""
    return state_of(request.scope).service.store


StoreDep = Annotated[EventStore, Depends(event_store)]
"""The service's [`EventStore`][eventcore.EventStore], for reads."""


def set_actor(actor: str) -> None:
    """Make `actor` the actor of the rest of the request (from an async dependency).

    The events the request records name it. Call it from the dependency that
    authenticates the request, declared before the unit of work (a router's
    `dependencies=[...]` run first), so idempotency keys are scoped by it too.
    """
    _context.set(dataclasses.replace(current_context(), actor=actor))


def unit_of_work(
    *,
    if_match: Literal["optional", "required"] = "optional",
    idempotency: Literal["optional", "required", "off"] = "optional",
) -> Any:
    """The unit of work dependency, for `Annotated[RequestUnitOfWork, unit_of_work(...)]`.

    Args:
        if_match: `"required"` answers 428 to a request without `If-Match`.
        idempotency: `"optional"` honours an `Idempotency-Key` when the client sends
            one, `"required"` answers 400 without one, `"off"` ignores it.
    """
    require_if_match = if_match == "required"

    # The headers are read from the request rather than declared as `Header()`
    # parameters: FastAPI validates each declared parameter on every request, which
    # costs more than the rest of this dependency.
    async def dependency(request: Request) -> AsyncIterator[RequestUnitOfWork]:
        state = state_of(request.scope)
        headers = state.request_headers
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        idempotency_key = headers.get("idempotency-key")
        service = state.service
        if require_if_match and if_match is None:
            raise PreconditionRequiredError()
        key = None if idempotency == "off" else idempotency_key
        if idempotency == "required" and key is None:
            raise IdempotencyKeyError("this request needs an Idempotency-Key header")
        uow = RequestUnitOfWork(
            service.store,
            projectors=service.projectors,
            mappings=service.mappings,
            if_match=if_match,
            if_none_match=if_none_match,
            deferred=key is not None,
        )
        if key is None:
            async with uow:
                yield uow
                results = uow.results if uow.committed else await uow.commit_now()
                state.headers.extend(commit_headers(uow, results or []))
            return
        scope = current_context().actor or ""
        request_print = await fingerprint(request)
        keys = service.idempotency_store()
        state.cleanups.append(service.hold_key(scope, check_key(key)))
        await uow.__aenter__()

        async def close(error: BaseException | None) -> None:
            await uow.__aexit__(type(error) if error else None, error, None)

        state.cleanups.append(close)
        # A request answered without running (a replay, a refused key) lets its key go
        # before its answer is sent: the client's next request must not find it held.
        try:
            record = await keys.claim(uow.session, scope, key, request_print)
        except BaseException as error:
            await state.close(error)
            raise
        if record is not None:
            await state.close(None)
            raise Replay(record)
        yield uow
        retention = service.idempotency_retention
        state.finish = deferred_commit(uow, keys, scope, key, request_print, retention)

    return Depends(dependency, scope="function")


UnitOfWorkDep = Annotated[RequestUnitOfWork, unit_of_work()]
"""The request's [`RequestUnitOfWork`][eventcore.fastapi.RequestUnitOfWork]: committed once
the endpoint returns, before the response is sent; `If-Match` and `Idempotency-Key`
honoured when sent."""


def consistent_read(*projections: Projector | type[Projector] | str, timeout: float = 5.0) -> Any:
    """A dependency that makes a read wait until `projections` reflect the client's writes.

    The client sends back the `Log-Position` of its write as `Min-Log-Position`; the
    read waits (at most `timeout` seconds) until each named projection (a projector, its
    class, or the name of one run by the service's workers) has processed the log up
    to it, and answers 503 with `Retry-After` if they do not: never stale data presented
    as fresh. Without the header it reads at once.

    ```python
    @router.get("/sections/{section_id}/roster", dependencies=[consistent_read(Roster)])
    async def roster(section_id: str) -> RosterView: ...
    ```
    """
    if not projections:
        raise UnitOfWorkError("consistent_read() needs the projections the read depends on")

    async def dependency(
        request: Request,
        min_log_position: Annotated[
            int | None,
            Header(
                alias=MIN_POSITION_HEADER,
                ge=1,
                description="The Log-Position of a write this read must reflect.",
            ),
        ] = None,
    ) -> None:
        if min_log_position is not None:
            service = state_of(request.scope).service
            await service.wait_for(projections, min_log_position, timeout=timeout)

    return Depends(dependency)
