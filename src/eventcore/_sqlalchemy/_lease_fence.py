"""The fence that keeps a projector's batches to the holder of its PostgreSQL lease.

A lease alone cannot stop a holder that lost it without noticing yet from writing. So a
batch starts by moving the projector's checkpoint, in one statement: an `UPDATE` of the
checkpoint row that matches only if the row is where the holder left it and the
holder's session still holds the advisory lock (an `INSERT ... ON CONFLICT DO UPDATE`
with the same conditions for the first batch, when there may be no row yet). No row
returned: the batch fails with `LeaseLostError` before it writes anything, and rolls
back. The moved checkpoint commits with the batch, or not at all.

Two batches of one projector never overlap: the second's statement waits for the row
lock the first one holds, then (READ COMMITTED re-checks the condition on the row the
first committed) finds the checkpoint moved and fails.

Callers that write the checkpoint themselves (`guard` without `advance_to`) get the
plain fence: the row locked with `SELECT ... FOR UPDATE` and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore._domain._metadata import LogPosition
from eventcore._exceptions import LeaseLostError, ProjectionError
from eventcore._persistence._store import EventStoreSession
from eventcore._sqlalchemy._errors import store_error
from eventcore._sqlalchemy._schema import EventStoreTables

__all__ = ["FenceSql", "PostgresLease"]

_HELD = (
    "EXISTS (SELECT FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.pid = {pid} AND l.classid = {high} AND l.objid = {low} AND l.objsubid = 1)"
)


@dataclass(frozen=True, slots=True)
class FenceSql:
    """The fence's statements for one store's checkpoints table."""

    claim: TextClause
    lock: TextClause
    state: TextClause
    advance: str
    advance_first: str

    @classmethod
    def for_tables(cls, tables: EventStoreTables) -> FenceSql:
        """Build the statements for `tables`."""
        checkpoints = tables.qualified(tables.checkpoints)
        named = _HELD.format(pid=":pid", high="CAST(:high AS oid)", low="CAST(:low AS oid)")
        # $1 name, $2-$4 the lock (pid, high, low), $5-$6 the new position, $7-$8 the old.
        numbered = _HELD.format(pid="$2::int", high="$3::oid", low="$4::oid")
        moved = "transaction_id = $5::bigint, global_position = $6::bigint, updated_at = now()"
        return cls(
            claim=text(
                f"INSERT INTO {checkpoints} (name, transaction_id, global_position) "
                "VALUES (:name, 0, 0) ON CONFLICT (name) DO NOTHING"
            ),
            lock=text(
                f"SELECT c.transaction_id, c.global_position, {named} "
                f"FROM {checkpoints} c WHERE c.name = :name FOR UPDATE OF c"
            ),
            state=text(  # why a batch was refused (not locking: it is only for the message)
                f"SELECT c.transaction_id, c.global_position, {named} "
                f"FROM (SELECT) AS one LEFT JOIN {checkpoints} c ON c.name = :name"
            ),
            advance=(
                f"UPDATE {checkpoints} SET {moved} WHERE name = $1::text "
                "AND transaction_id = $7::bigint AND global_position = $8::bigint "
                f"AND {numbered} RETURNING 1"
            ),
            advance_first=(
                f"INSERT INTO {checkpoints} AS c (name, transaction_id, global_position) "
                f"SELECT $1::text, $5::bigint, $6::bigint WHERE {numbered} "
                f"ON CONFLICT (name) DO UPDATE SET {moved} "
                "WHERE c.transaction_id = 0 AND c.global_position = 0 RETURNING 1"
            ),
        )


class PostgresLease:
    """A lease this process holds on one projector (see `PostgresLeases`)."""

    def __init__(self, name: str, key: int, pid: int, sql: FenceSql) -> None:
        self._name = name
        self.key = key
        self.pid = pid  # the backend holding the advisory lock
        self._sql = sql
        self.lost = ""  # why it was lost, once it is
        self._high, self._low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF

    @property
    def name(self) -> str:
        """The projector's key."""
        return self._name

    async def guard(
        self,
        session: EventStoreSession,
        checkpoint: LogPosition,
        advance_to: LogPosition | None = None,
    ) -> bool:
        """Fence the batch in `session` (see the module); with `advance_to`, move the
        checkpoint there in the same statement and return True."""
        if self.lost:
            raise LeaseLostError(f"lost the lease on projector {self._name!r}: {self.lost}")
        connection: Any = getattr(session, "connection", None)
        if not isinstance(connection, AsyncConnection):
            raise ProjectionError("PostgreSQL leases need a SqlAlchemyEventStore session")
        try:
            if advance_to is not None:
                if await self._advance(connection, checkpoint, advance_to):
                    return True
                row = (await connection.execute(self._sql.state, self._named())).first()
            else:
                if checkpoint == LogPosition():
                    await connection.execute(self._sql.claim, {"name": self._name})
                row = (await connection.execute(self._sql.lock, self._named())).first()
        except SQLAlchemyError as error:
            raise store_error(f"cannot lock the checkpoint of {self._name!r}", error) from error
        self._check(row, checkpoint)
        if advance_to is not None:  # refused, yet both looked fine a moment later
            raise LeaseLostError(f"another worker is applying a batch of {self._name!r}")
        return False

    async def _advance(
        self, connection: AsyncConnection, checkpoint: LogPosition, to: LogPosition
    ) -> bool:
        """Move the checkpoint from `checkpoint` to `to` if fenced; say whether it moved."""
        params: tuple[object, ...] = (self._name, self.pid, self._high, self._low)
        params += (to.transaction_id, to.global_position)
        if checkpoint == LogPosition():  # no row yet, or one at the start
            result = await connection.exec_driver_sql(self._sql.advance_first, params)
        else:
            params += (checkpoint.transaction_id, checkpoint.global_position)
            result = await connection.exec_driver_sql(self._sql.advance, params)
        return result.first() is not None

    def _named(self) -> dict[str, object]:
        return {"name": self._name, "pid": self.pid, "high": self._high, "low": self._low}

    def _check(self, row: Sequence[Any] | None, checkpoint: LogPosition) -> None:
        """Raise `LeaseLostError` unless `row` (position, lock held) is at `checkpoint`."""
        if row is None or row[0] is None:
            stored = None if checkpoint != LogPosition() or row is None else LogPosition()
        else:
            stored = LogPosition(row[0], row[1])
        if stored != checkpoint:
            raise LeaseLostError(
                f"the checkpoint of projector {self._name!r} is {stored}, not {checkpoint}: "
                "another worker (or a reset) moved it"
            )
        if row is None or not row[2]:
            raise LeaseLostError(f"this process no longer holds the lease on {self._name!r}")
