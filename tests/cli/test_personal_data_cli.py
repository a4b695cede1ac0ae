"""`eventcore personal-data ...`: new-key, status, forget, rotate; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from eventcore import EventStoreTables, LocalKeyProvider, SqlAlchemyEventStore
from eventcore.testing._personal_support import FORGOTTEN, NAME, enrolled, fresh_id
from tests.cli.test_cli import Database, assert_one_line_error, invoke
from tests.cli.test_outbox_cli import db as db  # the fixtures
from tests.cli.test_outbox_cli import postgres_db, sqlite_db  # noqa: F401

KEK_1 = LocalKeyProvider.generate("kek-1")


def _with_keys(db: Database, text: str, work: object) -> object:
    async def go() -> object:
        engine = db.engine()
        store = SqlAlchemyEventStore(
            engine,
            tables=EventStoreTables(schema=db.schema),
            key_provider=LocalKeyProvider.from_text(text),
        )
        try:
            return await work(store)  # type: ignore[operator]
        finally:
            await store.close()
            await engine.dispose()

    return anyio.run(go)


def _enrol(db: Database, person: str) -> None:
    async def write(store: SqlAlchemyEventStore) -> None:
        await store.append(person, [enrolled(person)])

    _with_keys(db, KEK_1, write)


def _name(db: Database, person: str, keys: str = KEK_1) -> str:
    async def read(store: SqlAlchemyEventStore) -> str:
        [recorded] = await store.read_stream(person)
        return str(recorded.event.name)  # type: ignore[attr-defined]

    return str(_with_keys(db, keys, read))


def test_new_key_prints_a_usable_entry() -> None:
    result = invoke(Database("sqlite:///unused.db"), "personal-data", "new-key", "kek-2", app=None)
    assert result.exit_code == 0, result.output
    provider = LocalKeyProvider.from_text(result.stdout.strip())
    assert provider.current_key_id == "kek-2"


def test_status_and_forget(db: Database) -> None:
    person = fresh_id("p")
    _enrol(db, person)
    shown = invoke(db, "personal-data", "status", person, app=None)
    assert shown.exit_code == 0, shown.output
    assert "2 usable data key(s)" in shown.stdout
    forgot = invoke(
        db, "personal-data", "forget", person, "--actor", "dpo", "--reason", "ticket 9",
        input="y\n", app=None,
    )  # fmt: skip
    assert forgot.exit_code == 0, forgot.output
    assert "2 data key(s) destroyed" in forgot.stdout
    assert _name(db, person) == FORGOTTEN
    again = invoke(
        db, "personal-data", "forget", person, "--actor", "dpo", "--reason", "x", "--yes",
        app=None,
    )  # fmt: skip
    assert "forgotten before" in again.stdout
    rows = invoke(db, "personal-data", "status", person, "--json", app=None)
    records = [json.loads(line) for line in rows.stdout.splitlines()]
    assert {r["forgotten_by"] for r in records} == {"dpo"}
    assert not any(r["usable"] for r in records)
    assert_one_line_error(invoke(db, "personal-data", "status", "nobody", app=None), 1, "nobody")


def test_forget_asks_first(db: Database) -> None:
    person = fresh_id("p")
    _enrol(db, person)
    result = invoke(
        db, "personal-data", "forget", person, "--actor", "a", "--reason", "r", input="n\n",
        app=None,
    )  # fmt: skip
    assert result.exit_code == 1
    assert _name(db, person) == NAME


def test_rotate(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    person = fresh_id("p")
    _enrol(db, person)
    kek_2 = LocalKeyProvider.generate("kek-2")
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{kek_2}\n{KEK_1}\n")
    done = invoke(db, "--kek-file", str(keys), "personal-data", "rotate", app=None)
    assert done.exit_code == 0, done.output
    assert "re-wrapped 2 data key(s) with 'kek-2'" in done.stdout
    assert _name(db, person, kek_2) == NAME  # the old key can go
    monkeypatch.delenv("EVENTCORE_KEK", raising=False)
    assert_one_line_error(invoke(db, "personal-data", "rotate", app=None), 2, "EVENTCORE_KEK")
    monkeypatch.setenv("EVENTCORE_KEK", "not a key")
    assert_one_line_error(invoke(db, "personal-data", "rotate", app=None), 1, "EVENTCORE_KEK")
