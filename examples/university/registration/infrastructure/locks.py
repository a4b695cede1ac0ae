"""Stream locks across processes: PostgreSQL advisory locks, held until the transaction ends.

`StreamGate` queues a section's commands inside one process; with several instances of
the service, this lock makes their commands take turns too (each instance still queues
its own, so at most one of its connections waits on the lock per stream). Correctness
does not depend on it: the expected versions of the commit do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["lock_key", "postgres_stream_lock"]

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(stream_id: str) -> int:
    """A stable signed 64-bit advisory lock key for `stream_id`."""
    digest = hashlib.blake2b(stream_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def postgres_stream_lock(connection: AsyncConnection, stream_ids: Sequence[str]) -> None:
    """Take the advisory lock of each stream, in the order given, in the transaction."""
    for stream_id in stream_ids:
        await connection.execute(_LOCK, {"key": lock_key(stream_id)})
