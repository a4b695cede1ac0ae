"""Reading and overwriting stored payloads in place, for the tampering tests."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import select, update

from eventcore import EventStore, InMemoryEventStore, SqlAlchemyEventStore

__all__ = ["read_payloads", "write_payload"]


async def read_payloads(store: EventStore, stream_id: str) -> list[str]:
    """The stored payloads (JSON text) of `stream_id`, in version order."""
    if isinstance(store, InMemoryEventStore):
        return [row.encoded.data for row in store._streams.get(stream_id, [])]
    if isinstance(store, SqlAlchemyEventStore):
        ev = store.tables.events
        query = select(ev.c.data).where(ev.c.stream_id == stream_id).order_by(ev.c.version)
        async with store.engine.connect() as conn:
            return [json.dumps(row[0]) for row in (await conn.execute(query)).all()]
    raise NotImplementedError(
        f"PersonalDataContract cannot read a {type(store).__name__}'s payloads: override "
        "its raw_payloads(store, stream_id) and write_payload(...) hooks"
    )


async def write_payload(store: EventStore, stream_id: str, version: int, data: str) -> None:
    """Overwrite the stored payload of `stream_id`'s event `version` with `data`."""
    if isinstance(store, InMemoryEventStore):
        rows = store._streams[stream_id]
        old = rows[version - 1]
        new = replace(old, encoded=old.encoded._replace(data=data))
        rows[version - 1] = new
        store._log[old.position - 1] = new
        return
    if isinstance(store, SqlAlchemyEventStore):
        ev = store.tables.events
        statement = (
            update(ev)
            .where(ev.c.stream_id == stream_id, ev.c.version == version)
            .values(data=json.loads(data))
        )
        async with store.engine.begin() as conn:
            await conn.execute(statement)
        return
    raise NotImplementedError(f"cannot overwrite a {type(store).__name__}'s payloads")
