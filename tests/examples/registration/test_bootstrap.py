"""The composition root: the context's own tables, and who owns the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from university.registration import Registration, bootstrap
from university.registration.infrastructure.store import engine_for

pytestmark = pytest.mark.anyio


async def test_the_context_owns_its_prefixed_tables(registration: Registration) -> None:
    store = registration.store
    async with store.engine.connect() as conn:
        names = await conn.run_sync(
            lambda sync: set(inspect(sync).get_table_names(schema=store.tables.schema))
        )
    assert {"registration_events", "registration_outbox", "registration_inbox"} <= names
    assert {t.name for t in registration.tables.all} <= names
    assert not any(name.startswith("eventcore_") for name in names)


async def test_a_url_engine_is_disposed_but_a_given_engine_is_not(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'own.db'}")
    async with await bootstrap(engine):
        pass
    async with engine.connect() as conn:  # still usable: the caller owns it
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    await engine.dispose()


def test_unsupported_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        engine_for("mysql://localhost/university")
