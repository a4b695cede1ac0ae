"""The log read must walk the (transaction_id, global_position) index, never sort the log."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from eventcore import SqlAlchemyEventStore
from eventcore._sqlalchemy._postgres_sql import PostgresSql

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_read_log_uses_the_log_order_index(
    postgres_event_store: SqlAlchemyEventStore,
) -> None:
    store = postgres_event_store
    sql = PostgresSql.for_tables(store.tables).read_log
    explain = sql.replace("$1::text", "'0'::text").replace("$2", "0").replace("$3", "100")
    explain = explain.replace("$4::text[]", "NULL::text[]").replace("$5::text[]", "NULL::text[]")
    explain = explain.replace("ANY($4)", "ANY(NULL::text[])").replace(
        "ANY($5)", "ANY(NULL::text[])"
    )
    async with store.engine.connect() as conn:
        # Make every other plan look expensive: a sort is then chosen only if the
        # index cannot provide the order (as when ORDER BY names a computed column).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await conn.execute(text(f"SET {setting} = off"))
        plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {explain}")))
    assert "events_log_order" in plan, plan
    assert "Sort" not in plan, plan
