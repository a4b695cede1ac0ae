"""`OutboxLanes`: which relay owns which lane of the outbox, by leases in the database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore._messaging._outbox import LANES
from eventcore._sqlalchemy._errors import fetch, retried
from eventcore._sqlalchemy._schema import EventStoreTables
from eventcore._sqlalchemy._transaction import transaction

__all__ = ["OutboxLanes"]


class OutboxLanes:
    """The lanes table and the relays' registrations: relays share the lanes evenly,
    each owning its share until its lease runs out (see `Outbox.claim_lanes`)."""

    def __init__(self, engine: AsyncEngine, tables: EventStoreTables) -> None:
        self._engine = engine
        self._lanes = tables.outbox_lanes
        self._relays = tables.outbox_relays

    async def claim(self, relay_id: str, lease: timedelta) -> list[int]:
        """Register `relay_id` as alive and return the lanes it owns now (see `Outbox`).

        A heartbeat, safe to repeat: retried once on a lost connection.
        """
        return await retried("cannot claim outbox lanes", lambda: self._claim_once(relay_id, lease))

    async def _claim_once(self, relay_id: str, lease: timedelta) -> list[int]:
        now = datetime.now(UTC)
        until = now + lease
        async with transaction(self._engine, "cannot claim outbox lanes") as conn:
            await self._heartbeat(conn, relay_id, now, until)
            live = await conn.scalar(select(func.count()).where(self._relays.c.seen_until >= now))
            quota = math.ceil(LANES / max(int(live or 1), 1))
            owned = await self._owned(conn, relay_id, now)
            kept, extra = owned[:quota], owned[quota:]
            lanes = self._lanes
            if extra:
                await conn.execute(
                    update(lanes)
                    .where(lanes.c.lane.in_(extra))
                    .values(owner=None, lease_until=None)
                )
            if kept:
                await conn.execute(
                    update(lanes).where(lanes.c.lane.in_(kept)).values(lease_until=until)
                )
            if len(kept) < quota:
                kept += await self._take_free(conn, relay_id, now, until, quota - len(kept))
        return sorted(kept)

    async def release(self, relay_id: str) -> None:
        """Give up `relay_id`'s lanes and registration (at shutdown)."""
        lanes, relays = self._lanes, self._relays
        async with transaction(self._engine, "cannot release outbox lanes") as conn:
            await conn.execute(
                update(lanes).where(lanes.c.owner == relay_id).values(owner=None, lease_until=None)
            )
            await conn.execute(relays.delete().where(relays.c.relay_id == relay_id))

    async def owners(self) -> dict[int, tuple[str, datetime]]:
        """Who owns each lane: `{lane: (relay_id, lease_until)}` for the lanes with an owner.

        A lease in the past has run out: the owner stalled or died, and the next relay
        to renew its lanes takes the lane over. Lanes missing here have no owner.
        """
        lanes = self._lanes
        query = select(lanes.c.lane, lanes.c.owner, lanes.c.lease_until).where(
            lanes.c.owner.is_not(None), lanes.c.lease_until.is_not(None)
        )
        rows = await fetch(
            self._engine, "cannot read the outbox lanes", query.order_by(lanes.c.lane)
        )
        owners: dict[int, tuple[str, datetime]] = {}
        for lane, owner, until in rows:  # SQLite gives naive datetimes back
            owners[lane] = (owner, until if until.tzinfo else until.replace(tzinfo=UTC))
        return owners

    async def _heartbeat(
        self, conn: AsyncConnection, relay_id: str, now: datetime, until: datetime
    ) -> None:
        relays = self._relays
        await conn.execute(relays.delete().where(relays.c.seen_until < now))
        renewed = await conn.execute(
            update(relays).where(relays.c.relay_id == relay_id).values(seen_until=until)
        )
        if not renewed.rowcount:
            await conn.execute(insert(relays).values(relay_id=relay_id, seen_until=until))
        missing = await conn.scalar(select(func.count()).select_from(self._lanes))
        if missing != LANES:  # first run: create the lanes
            known = set((await conn.execute(select(self._lanes.c.lane))).scalars())
            fresh = [{"lane": lane} for lane in range(LANES) if lane not in known]
            if fresh:
                await conn.execute(insert(self._lanes), fresh)

    async def _owned(self, conn: AsyncConnection, relay_id: str, now: datetime) -> list[int]:
        lanes = self._lanes
        query = (
            select(lanes.c.lane)
            .where(lanes.c.owner == relay_id, lanes.c.lease_until >= now)
            .order_by(lanes.c.lane)
        )
        return list((await conn.execute(query)).scalars())

    async def _take_free(
        self, conn: AsyncConnection, relay_id: str, now: datetime, until: datetime, count: int
    ) -> list[int]:
        lanes = self._lanes
        free = (
            select(lanes.c.lane)
            .where(or_(lanes.c.owner.is_(None), lanes.c.lease_until < now))
            .order_by(lanes.c.lane)
            .limit(count)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(lanes)
            .where(lanes.c.lane.in_(free.scalar_subquery()))
            .values(owner=relay_id, lease_until=until)
            .returning(lanes.c.lane)
        )
        return list((await conn.execute(statement)).scalars())
