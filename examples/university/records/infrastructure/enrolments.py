"""`EnrolmentTable`: the enrolments records keeps, one row per student and section."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventcore import SqlAlchemyEventStore
from university.records.domain.enrolment import Enrolment, Standing
from university.records.infrastructure.store import TABLE_PREFIX

__all__ = ["EnrolmentTable"]


def _table(metadata: MetaData, schema: str | None) -> Table:
    return Table(
        f"{TABLE_PREFIX}enrolments",
        metadata,
        Column("student_id", String(255), primary_key=True),
        Column("section_id", String(255), primary_key=True, index=True),
        Column("standing", String(16), nullable=False),
        Column("sequence", Integer(), nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        schema=schema,
    )


class EnrolmentTable:
    """The `records_enrolments` table, next to the store's tables (same schema and metadata).

    `record` writes in the consumer's transaction; the reads use the engine.
    """

    def __init__(self, store: SqlAlchemyEventStore) -> None:
        self._engine: AsyncEngine = store.engine
        self.table = _table(store.tables.metadata, store.tables.schema)

    async def create(self) -> None:
        """Create the table if it is missing (demos and tests; use migrations otherwise)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(lambda sync: self.table.create(sync, checkfirst=True))

    async def record(self, connection: AsyncConnection, enrolment: Enrolment) -> None:
        """Keep `enrolment` unless the row holds a newer one (`Enrolment.supersedes`).

        One upsert whose update is guarded by the sequence: concurrent consumers (in
        several processes) cannot make an older change win.
        """
        t = self.table
        insert: Any = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = insert(t).values(
            student_id=enrolment.student_id,
            section_id=enrolment.section_id,
            standing=enrolment.standing.value,
            sequence=enrolment.sequence,
            changed_at=enrolment.changed_at,
        )
        new = statement.excluded
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.student_id, t.c.section_id],
                set_={
                    "standing": new.standing,
                    "sequence": new.sequence,
                    "changed_at": new.changed_at,
                },
                where=t.c.sequence < new.sequence,
            )
        )

    async def class_list(self, section_id: str) -> list[str]:
        """The students enrolled in `section_id` now, sorted."""
        t = self.table
        query = (
            select(t.c.student_id)
            .where(t.c.section_id == section_id, t.c.standing == Standing.ENROLLED.value)
            .order_by(t.c.student_id)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def enrolments_of(self, student_id: str) -> list[Enrolment]:
        """Every section `student_id` enrolled in, withdrawn ones too, by section id."""
        t = self.table
        query = select(t).where(t.c.student_id == student_id).order_by(t.c.section_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Enrolment(
                student_id=row["student_id"],
                section_id=row["section_id"],
                standing=Standing(row["standing"]),
                sequence=row["sequence"],
                changed_at=row["changed_at"],
            )
            for row in rows
        ]
