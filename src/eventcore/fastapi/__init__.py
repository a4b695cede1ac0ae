"""FastAPI for event-sourced services (`pip install 'eventcore-es[fastapi]'`).

[`Eventcore`][eventcore.fastapi.Eventcore] wires a store into an app: its lifespan
opens the store and runs the in-process workers, `install` adds problem+json errors,
the request context middleware and health endpoints. Endpoints declare what they need:

```python
from eventcore.fastapi import ConditionalDep, Eventcore, StoreDep, UnitOfWorkDep

@router.post("/sections/{section_id}/registrations", status_code=201)
async def register(section_id: str, body: Register, uow: UnitOfWorkDep) -> Registered:
    section = await uow.get(Section, section_id)  # 404, If-Match -> 412
    section.register(body.student_id)
    return Registered(student_id=body.student_id)  # committed before it is sent
```
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "eventcore.fastapi needs FastAPI: pip install 'eventcore-es[fastapi]'"
    ) from error

from eventcore.fastapi._dependencies import (
    MIN_POSITION_HEADER,
    StoreDep,
    UnitOfWorkDep,
    consistent_read,
    event_store,
    set_actor,
    unit_of_work,
)
from eventcore.fastapi._health import Readiness, health_router
from eventcore.fastapi._idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from eventcore.fastapi._middleware import CORRELATION_HEADER, REQUEST_HEADER, EventcoreMiddleware
from eventcore.fastapi._preconditions import Conditional, ConditionalDep, etag
from eventcore.fastapi._problems import PROBLEM_JSON, Problems, ProblemType, problem_response
from eventcore.fastapi._service import Eventcore
from eventcore.fastapi._sse import EventStreamResponse, event_json, event_stream
from eventcore.fastapi._unit_of_work import LOG_POSITION_HEADER, RequestUnitOfWork
from eventcore.fastapi._workers import Worker

__all__ = [
    "CORRELATION_HEADER",
    "IDEMPOTENCY_HEADER",
    "LOG_POSITION_HEADER",
    "MIN_POSITION_HEADER",
    "PROBLEM_JSON",
    "REPLAYED_HEADER",
    "REQUEST_HEADER",
    "Conditional",
    "ConditionalDep",
    "EventStreamResponse",
    "Eventcore",
    "EventcoreMiddleware",
    "ProblemType",
    "Problems",
    "Readiness",
    "RequestUnitOfWork",
    "StoreDep",
    "UnitOfWorkDep",
    "Worker",
    "consistent_read",
    "etag",
    "event_json",
    "event_store",
    "event_stream",
    "health_router",
    "problem_response",
    "set_actor",
    "unit_of_work",
]
