"""What the relay scenarios publish, and the steady load of the latency scenarios.

Each committed `ItemAdded` becomes one `CartItemAdded` message through an
`IntegrationMapping`, in the unit of work's transaction. Run as a script, this is the
writer process of `relay_latency_<broker>`:

```
python benchmarks/_relay_load.py URL SCHEMA TOPIC RATE SECONDS PREFIX
```

It commits units of work at `RATE` per second for one second (warm-up), then for
`SECONDS`, and prints, as one JSON object, when each commit of the second period
returned (`time.perf_counter()`: the system's monotonic clock, the same in every
process) by message id, and the rate it achieved.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

from _model import Cart, ItemAdded
from eventcore import (
    EventStoreTables,
    IntegrationEvent,
    IntegrationMapping,
    NewEvent,
    RecordedEvent,
    SqlAlchemyEventStore,
    UnitOfWork,
    postgres_engine,
    translates,
)

__all__ = ["WRITERS", "CartContract", "CartItemAdded", "routed", "steady_load"]

WRITERS = 4
"""Writer tasks sharing the load, one message per unit of work each."""
_PER_CART = 10  # items (messages) per cart
CUSTOMER = "9b2f4c1e-5d7a-4f0b-8e3c-2a6d1f9e7b40"


class CartItemAdded(IntegrationEvent, type_name="benchmarks.CartItemAdded"):
    """The integration event the relay scenarios publish: about 200 bytes of JSON."""

    cart_id: str
    line: int
    sku: str
    quantity: int
    unit_price_cents: int
    currency: str
    customer_id: str
    added_at: str


def routed(topic: str) -> type[CartItemAdded]:
    """`CartItemAdded` published to `topic` (each scenario has a destination of its own)."""

    class Routed(CartItemAdded, type_name=CartItemAdded.integration_type_name, topic=topic):
        """`CartItemAdded` on the scenario's topic."""

    return Routed


class CartContract(IntegrationMapping):
    """Each `ItemAdded` committed becomes one `CartItemAdded` (partition key: the cart)."""

    def __init__(self, event_type: type[CartItemAdded]) -> None:
        self.event_type = event_type

    @translates
    def _added(self, event: ItemAdded, recorded: RecordedEvent) -> CartItemAdded:
        return self.event_type(
            cart_id=recorded.stream_id,
            line=recorded.version,
            customer_id=CUSTOMER,
            added_at=recorded.recorded_at.isoformat(),
            **event.model_dump(),
        )

    def message_id(self, event: NewEvent) -> uuid.UUID:
        """The id of the message translated from `event` (as the unit of work derives it)."""
        return uuid.uuid5(event.event_id, f"{self.event_type.integration_type_name}/0")


async def _writer(
    store: SqlAlchemyEventStore,
    contract: CartContract,
    prefix: str,
    count: int,
    start: float,
    interval: float,
    committed: dict[uuid.UUID, float],
) -> None:
    """Commit `count` units of work (one item added: one message), one every `interval`
    seconds from `start`, noting when each commit returned."""
    cart = Cart(prefix)
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if i % _PER_CART == 0:
            cart = Cart(f"{prefix}-{i // _PER_CART}")
        cart.add_item(i)
        async with UnitOfWork(store, mappings=[contract]) as uow:
            uow.track(cart)
            await uow.commit()
            at = time.perf_counter()
        [(_, event)] = uow.committed_events
        committed[contract.message_id(event)] = at


async def steady_load(
    store: SqlAlchemyEventStore, contract: CartContract, rate: float, seconds: float, prefix: str
) -> tuple[dict[uuid.UUID, float], float]:
    """`rate` units of work per second for `seconds`, from `WRITERS` staggered writer
    tasks. Returns when each commit returned by message id, and the rate achieved."""
    count = int(rate * seconds) // WRITERS
    committed: dict[uuid.UUID, float] = {}
    start = time.perf_counter() + 0.01
    await asyncio.gather(
        *(
            _writer(store, contract, f"{prefix}-w{k}", count, start + k / rate, WRITERS / rate,
                    committed)
            for k in range(WRITERS)
        )
    )  # fmt: skip
    return committed, len(committed) / (time.perf_counter() - start)


async def _main(
    url: str, schema: str, topic: str, rate: float, seconds: float, prefix: str
) -> None:
    engine = postgres_engine(url, pool_size=WRITERS + 1)
    store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=schema))
    contract = CartContract(routed(topic))
    try:
        await steady_load(store, contract, rate, 1.0, f"{prefix}-warm")
        committed, achieved = await steady_load(store, contract, rate, seconds, prefix)
    finally:
        await store.close()
        await engine.dispose()
    result = {"rate": achieved, "committed": {str(k): v for k, v in committed.items()}}
    print(json.dumps(result))


if __name__ == "__main__":
    url, schema, topic, rate, seconds, prefix = sys.argv[1:]
    asyncio.run(_main(url, schema, topic, float(rate), float(seconds), prefix))
