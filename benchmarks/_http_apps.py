"""The two servers of `http_command`: one endpoint, through eventcore.fastapi and raw asyncpg.

`POST /carts/{cart_id}/items` loads the cart, adds an item and commits; both answer
`{"cart_id", "version"}` (201). Run as a script, it serves one side under uvicorn:

```
python benchmarks/_http_apps.py eventcore|raw URL SCHEMA PORT POOL
```

Both sides use the same uvicorn settings (one process, uvloop, httptools, no access log).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from pydantic import BaseModel

from _harness import asyncpg_dsn
from _model import ITEM_ADDED, Cart, item_fields
from _raw import RawEventStore
from eventcore import EventStoreTables, SqlAlchemyEventStore, UnitOfWork, postgres_engine
from eventcore.fastapi import Eventcore, UnitOfWorkDep
from fastapi import FastAPI, Request

__all__ = ["AddItem", "Added", "eventcore_app", "raw_app", "serve", "uow_app"]


class AddItem(BaseModel):
    """The request: which item of the run to add."""

    i: int


class Added(BaseModel):
    """The response: the cart's version after the command."""

    cart_id: str
    version: int


def eventcore_app(url: str, schema: str, pool: int) -> FastAPI:
    """The endpoint through eventcore.fastapi: a request unit of work, committed for it."""
    store = SqlAlchemyEventStore(
        postgres_engine(url, pool_size=pool, max_overflow=0), tables=EventStoreTables(schema=schema)
    )
    service = Eventcore(store)
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)

    @app.post("/carts/{cart_id}/items", status_code=201)
    async def add_item(cart_id: str, body: AddItem, uow: UnitOfWorkDep) -> Added:
        cart = await uow.get(Cart, cart_id)
        cart.add_item(body.i)
        return Added(cart_id=cart_id, version=cart.version)

    return app


def uow_app(url: str, schema: str, pool: int) -> FastAPI:
    """The endpoint with a plain `UnitOfWork` and no eventcore.fastapi (for profiling)."""
    store = SqlAlchemyEventStore(
        postgres_engine(url, pool_size=pool, max_overflow=0), tables=EventStoreTables(schema=schema)
    )
    app = FastAPI()

    @app.post("/carts/{cart_id}/items", status_code=201)
    async def add_item(cart_id: str, body: AddItem) -> Added:
        async with UnitOfWork(store) as uow:
            cart = await uow.repository(Cart).get(cart_id)
            cart.add_item(body.i)
            await uow.commit()
        return Added(cart_id=cart_id, version=cart.version)

    return app


def raw_app(url: str, schema: str, pool: int) -> FastAPI:
    """The same endpoint on raw asyncpg: load the events, one INSERT, in a transaction."""
    raw = RawEventStore(schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=pool)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/carts/{cart_id}/items", status_code=201)
    async def add_item(cart_id: str, body: AddItem, request: Request) -> Added:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            payloads = await raw.load(conn, cart_id)
            quantities: dict[str, int] = {}  # the cart's state, as Cart keeps it
            for fields in payloads:
                quantities[fields["sku"]] = quantities.get(fields["sku"], 0) + fields["quantity"]
            version = len(payloads) + 1
            await raw.append_one(conn, cart_id, version, ITEM_ADDED, item_fields(body.i))
        return Added(cart_id=cart_id, version=version)

    return app


def serve(side: str, url: str, schema: str, port: int, pool: int) -> None:
    """Serve one side on 127.0.0.1:`port` until SIGTERM."""
    make = {"eventcore": eventcore_app, "uow": uow_app, "raw": raw_app}[side]
    app = make(url, schema, pool)
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning",
    )  # fmt: skip


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
