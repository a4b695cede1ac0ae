"""`Eventcore`: an event-sourced FastAPI service's store, workers, errors and health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from eventcore._application._projection_status import wait_for_projection
from eventcore._application._projector import Projector
from eventcore._domain._integration import IntegrationMapping
from eventcore._exceptions import (
    CatchUpTimeoutError,
    IdempotencyKeyInFlightError,
    ProjectionError,
    StoreError,
    UnitOfWorkError,
)
from eventcore._persistence._idempotency import IdempotencyStore
from eventcore._persistence._store import EventStore
from eventcore.fastapi._health import Readiness, health_router
from eventcore.fastapi._idempotency import Replay, replay_response
from eventcore.fastapi._middleware import Cleanup, EventcoreMiddleware
from eventcore.fastapi._problems import Problems, ProblemType
from eventcore.fastapi._signals import draining_on_signals
from eventcore.fastapi._workers import Supervisor, Worker
from fastapi import FastAPI

__all__ = ["Eventcore"]

_log = logging.getLogger("eventcore.fastapi")
ProjectionRef = Projector | type[Projector] | str


class Eventcore:
    """The event-sourced side of a FastAPI service: store, workers, errors, health.

    ```python
    store = SqlAlchemyEventStore(postgres_engine(settings.database_url))
    service = Eventcore(
        store,
        workers=[ProjectionWorker(store, [RosterProjector()]), OutboxRelay(store, publisher)],
        errors={SectionFullError: 409},
        readiness=Readiness(max_projection_lag=10.0),
    )
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)
    app.include_router(sections.router)
    ```

    Args:
        store: the event store; the lifespan opens it (checks its tables, warms its
            connections) and closes it.
        projectors: inline projections of every request's unit of work.
        mappings: integration mappings of every request's unit of work (outbox).
        workers: run in the app's task group while it runs (anything with
            `async run()`: projection and process manager workers, outbox relays,
            consumers); started in this order, stopped in the reverse order.
        errors: the application's errors and their status (`{SectionFull: 409}`).
        readiness: the readiness check's thresholds.
        grace_period: seconds the workers have, together, to stop at shutdown.
        idempotency_retention: how long an `Idempotency-Key`'s response is kept.
        create_schema: create missing tables at startup (else check they exist).
        warm_up: open the connection pool's connections at startup.
        close_store: close the store (and dispose of its engine) at shutdown.
        actor: who the request's principal is (default: an authenticated
            `scope["user"]`'s `display_name`); see also `set_actor`.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        projectors: Sequence[Projector] = (),
        mappings: Sequence[IntegrationMapping] = (),
        workers: Sequence[Worker] = (),
        errors: Mapping[type[Exception], int | ProblemType] | None = None,
        readiness: Readiness | None = None,
        grace_period: float = 10.0,
        idempotency_retention: timedelta = timedelta(hours=24),
        create_schema: bool = False,
        warm_up: bool = True,
        close_store: bool = True,
        actor: Callable[[HTTPConnection], str | None] | None = None,
    ) -> None:
        self.store = store
        self.projectors = list(projectors)
        self.mappings = list(mappings)
        self.workers = list(workers)
        self.problems = Problems(errors)
        self.readiness = readiness or Readiness()
        self.idempotency_retention = idempotency_retention
        self._supervisor = Supervisor(self.workers, grace_period)
        self._create_schema = create_schema
        self._warm_up = warm_up
        self._close_store = close_store
        self._actor = actor
        self._held: set[tuple[str, str]] = set()
        self._drained: anyio.Event | None = None
        self._apps: list[FastAPI] = []

    # -- wiring -----------------------------------------------------------------------

    def install(self, app: FastAPI, *, health_path: str | None = "/health") -> None:
        """Add the middleware, the problem+json exception handlers and the health routes.

        Call it once the app is made, before it starts; add other middleware before
        it, so that this one is outermost (it then also answers their errors).
        """
        for error_type in self.problems.registered():
            app.add_exception_handler(error_type, self.problems.handle)
        app.add_exception_handler(HTTPException, self.problems.handle)
        app.add_exception_handler(Replay, _replay)
        app.add_middleware(EventcoreMiddleware, service=self)
        if health_path is not None:
            app.include_router(health_router(self, health_path))
        app.state.eventcore = self
        self._apps.append(app)

    def register_error(
        self,
        error_type: type[Exception],
        status: int,
        *,
        title: str | None = None,
        type: str = "about:blank",
    ) -> None:
        """Answer `error_type` (an application's domain error) with `status`."""
        self.problems.register(error_type, status, title=title, type=type)
        for app in self._apps:
            app.add_exception_handler(error_type, self.problems.handle)

    def actor_of(self, connection: HTTPConnection) -> str | None:
        """The actor of a request: its authenticated principal, if any."""
        if self._actor is not None:
            return self._actor(connection)
        user = connection.scope.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return str(getattr(user, "display_name", "")) or None
        return None

    # -- life cycle -------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Open the store, run the workers, and on shutdown drain and stop them in order.

        Pass it as `FastAPI(lifespan=service.lifespan)`, or enter it from your own
        lifespan (`async with service.lifespan(app): ...`).
        """
        self._drained = anyio.Event()
        await self._open()
        try:
            async with anyio.create_task_group() as group:
                self._supervisor.start(group)
                if getattr(self.store, "idempotency", None) is not None:
                    group.start_soon(self._sweep_idempotency_keys)
                try:
                    with draining_on_signals(self.drain):
                        yield
                finally:
                    self.drain()
                    await self._supervisor.stop()
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _open(self) -> None:
        store: Any = self.store
        if self._create_schema and hasattr(store, "create_schema"):
            await store.create_schema()
        elif hasattr(store, "check_schema"):
            await store.check_schema()
        engine = getattr(store, "engine", None)
        if self._warm_up and engine is not None:
            size = min(getattr(engine.pool, "size", lambda: 1)(), 32)

            async def connect() -> None:
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")

            async with anyio.create_task_group() as group:
                for _ in range(size):
                    group.start_soon(connect)
            await store.log_head()

    async def _close(self) -> None:
        store: Any = self.store
        if not self._close_store:
            return
        if hasattr(store, "close"):
            await store.close()
        engine = getattr(store, "engine", None)
        if engine is not None:
            await engine.dispose()

    async def _sweep_idempotency_keys(self) -> None:
        keys = self.idempotency_store()
        every = min(max(self.idempotency_retention.total_seconds() / 10, 60.0), 3600.0)
        while True:
            await anyio.sleep(every)
            try:
                deleted = await keys.delete_expired()
            except StoreError as error:
                _log.warning("cannot delete expired idempotency keys: %s", error)
                continue
            if deleted:
                _log.info("deleted %d expired idempotency keys", deleted)

    @property
    def draining(self) -> bool:
        """Whether the service is stopping (readiness fails, event streams end)."""
        return self._drained is not None and self._drained.is_set()

    def drain(self) -> None:
        """Start draining: readiness turns false and event streams end (idempotent).

        SIGTERM and SIGINT do it at once when the server handles them in Python
        (uvicorn does); so does the end of the lifespan. Call it yourself from a
        pre-stop hook to drain before the signal.
        """
        if self._drained is not None:
            self._drained.set()

    async def wait_drained(self) -> None:
        """Return once the service drains."""
        if self._drained is None:
            self._drained = anyio.Event()
        await self._drained.wait()

    @property
    def failed_workers(self) -> dict[str, str]:
        """The workers that stopped on their own since startup, and why."""
        return self._supervisor.failed

    # -- for the dependencies ---------------------------------------------------------

    def idempotency_store(self) -> IdempotencyStore:
        """The store's idempotency keys."""
        keys: IdempotencyStore | None = getattr(self.store, "idempotency", None)
        if keys is None:
            raise UnitOfWorkError(f"{type(self.store).__name__} keeps no idempotency keys")
        return keys

    def hold_key(self, scope: str, key: str) -> Cleanup:
        """Hold an idempotency key in this process; raise if a request holds it already."""
        held = (scope, key)
        if held in self._held:
            raise IdempotencyKeyInFlightError(key)
        self._held.add(held)

        async def release(_error: BaseException | None) -> None:
            self._held.discard(held)

        return release

    def projector(self, ref: ProjectionRef) -> Projector | type[Projector]:
        """The projector `ref` names: itself, or the one of that name the service runs."""
        if not isinstance(ref, str):
            return ref
        candidates = [*self.projectors]
        for worker in self.workers:
            candidates.extend(getattr(worker, "projectors", ()))
        for projector in candidates:
            if isinstance(projector, Projector) and ref in (projector.key, projector.name):
                return projector
        raise ProjectionError(f"the service runs no projection named {ref!r}")

    async def wait_for(
        self, projections: Collection[ProjectionRef], position: int, *, timeout: float
    ) -> None:
        """Wait until every projection has processed the log up to global `position`.

        Raises [`CatchUpTimeoutError`][eventcore.CatchUpTimeoutError] (503) after `timeout`.
        """
        deadline = anyio.current_time() + timeout
        store = self.store
        delay = 0.005
        try:
            with anyio.fail_after(timeout):
                while (target := await store.log_position_of(position)) is None:
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except TimeoutError:
            raise CatchUpTimeoutError(f"the log has no event at position {position}") from None
        for ref in projections:
            left = max(deadline - anyio.current_time(), 0.01)
            await wait_for_projection(store, self.projector(ref), target, timeout=left)


async def _replay(_request: Request, error: Exception) -> Response:
    assert isinstance(error, Replay)
    return replay_response(error.record)
