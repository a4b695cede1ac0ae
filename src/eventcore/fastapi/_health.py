"""Liveness and readiness: "restart me" and "send me no traffic", told apart.

Liveness fails only when restarting would help: a worker of the service has failed.
Readiness fails while the service drains (first, so a load balancer stops sending
traffic before the server stops), when the database does not answer, and when a
projection lags or the outbox backlog grows past the thresholds the application set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from fastapi.responses import JSONResponse
from starlette.responses import Response

from eventcore._application._projection_status import ProjectionStatus
from eventcore._exceptions import EventcoreError
from eventcore._messaging._outbox import Outbox
from eventcore.fastapi._problems import TYPE_BASE, problem_response
from fastapi import APIRouter, Request

if TYPE_CHECKING:
    from eventcore.fastapi._service import Eventcore

__all__ = ["Readiness", "health_router"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """When the service is not ready: the thresholds of its readiness check.

    Args:
        max_projection_lag: seconds the oldest event a projection (or process manager)
            run by the service has not processed may wait; `None`: report only.
        max_outbox_age: seconds the oldest unpublished outbox message may wait.
        max_outbox_pending: unpublished outbox messages allowed.
        database_timeout: seconds the database has to answer.
        retry_after: the `Retry-After` of a 503 (seconds).
    """

    max_projection_lag: float | None = None
    max_outbox_age: float | None = None
    max_outbox_pending: int | None = None
    database_timeout: float = 2.0
    retry_after: int = 5


def health_router(service: Eventcore, path: str = "/health") -> APIRouter:
    """`GET {path}/live` and `GET {path}/ready` for `service`."""
    router = APIRouter(include_in_schema=False)

    @router.get(f"{path}/live")
    async def live(request: Request) -> Response:
        failed = service.failed_workers
        if failed:
            return _unhealthy(request, "not-alive", f"workers failed: {', '.join(failed)}",
                              {"workers": failed}, service.readiness.retry_after)  # fmt: skip
        return JSONResponse({"status": "alive"})

    @router.get(f"{path}/ready")
    async def ready(request: Request) -> Response:
        checks, failures = await _readiness(service)
        if failures:
            return _unhealthy(request, "not-ready", "; ".join(failures), checks,
                              service.readiness.retry_after)  # fmt: skip
        return JSONResponse({"status": "ready", "checks": checks})

    return router


def _unhealthy(
    request: Request, slug: str, detail: str, checks: dict[str, Any], retry_after: int
) -> Response:
    return problem_response(
        request.scope,
        503,
        type=f"{TYPE_BASE}{slug}",
        title="Service Unavailable",
        detail=detail,
        headers={"Retry-After": str(retry_after)},
        checks=checks,
    )


async def _readiness(service: Eventcore) -> tuple[dict[str, Any], list[str]]:
    limits = service.readiness
    checks: dict[str, Any] = {}
    failures: list[str] = []
    if service.draining:
        failures.append("draining")
    checks["draining"] = service.draining
    failed = service.failed_workers
    if failed:
        failures.append(f"workers failed: {', '.join(failed)}")
    try:
        with anyio.fail_after(limits.database_timeout):
            head = await service.store.log_head()
        checks["database"] = {"status": "pass", "log_head": head}
    except (EventcoreError, TimeoutError, OSError) as error:
        checks["database"] = {"status": "fail"}
        failures.append(f"database: {type(error).__name__}")
        return checks, failures  # the other checks need the database too
    projections: dict[str, Any] = {}
    for status in await _projection_statuses(service):
        late = (
            limits.max_projection_lag is not None and status.lag_seconds > limits.max_projection_lag
        )
        projections[status.name] = {
            "status": "fail" if late else "pass",
            "lag_seconds": round(status.lag_seconds, 3),
            "checkpoint": status.checkpoint.global_position,
        }
        if late:
            failures.append(f"projection {status.name} is {status.lag_seconds:.1f} s behind")
    checks["projections"] = projections
    outbox: Outbox | None = getattr(service.store, "outbox", None)
    if outbox is not None:
        backlog = await outbox.status()
        age = backlog.oldest_pending_age.total_seconds() if backlog.oldest_pending_age else 0.0
        old = limits.max_outbox_age is not None and age > limits.max_outbox_age
        many = limits.max_outbox_pending is not None and backlog.pending > limits.max_outbox_pending
        checks["outbox"] = {
            "status": "fail" if old or many else "pass",
            "pending": backlog.pending,
            "oldest_pending_seconds": round(age, 3),
            "dead": backlog.dead,
        }
        if old or many:
            failures.append(f"outbox: {backlog.pending} pending, the oldest {age:.1f} s old")
    return checks, failures


async def _projection_statuses(service: Eventcore) -> list[ProjectionStatus]:
    statuses: list[ProjectionStatus] = []
    for worker in service.workers:
        status = getattr(worker, "status", None)
        if status is None:
            continue
        found = await status()
        if isinstance(found, list):
            statuses.extend(s for s in found if isinstance(s, ProjectionStatus))
    return statuses
