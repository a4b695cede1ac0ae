"""`EnrolmentsConsumer`: registration's contracts, turned into the enrolments records keeps.

This module is records' anti-corruption layer on the way in: it reads registration's
public contracts and nothing else of registration, and speaks records' own language
(`Enrolment`, `Standing`) from there on.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from eventcore import Consumer, ConsumerContext, handles
from university.records.domain.enrolment import Enrolment, Standing
from university.registration.contracts import StudentEnrolled, StudentWithdrew

__all__ = ["EnrolmentLedger", "EnrolmentsConsumer"]


class EnrolmentLedger(Protocol):
    """Where enrolments are kept (the infrastructure's table)."""

    async def record(self, connection: AsyncConnection, enrolment: Enrolment) -> None:
        """Keep `enrolment` unless a newer one is kept (`Enrolment.supersedes`)."""
        ...


class EnrolmentsConsumer(Consumer, name="records.enrolments"):
    """Keeps each student's enrolments from registration's `StudentEnrolled`/`StudentWithdrew`.

    Each message is handled in one transaction with its inbox record (see `Consumer`),
    so a message delivered twice changes nothing the second time; a message delivered
    after a newer one of the same student and section is ignored by the ledger.
    """

    def __init__(self, ledger: EnrolmentLedger) -> None:
        self._ledger = ledger

    @classmethod
    def topics(cls) -> tuple[str, ...]:
        """The topics of the contracts handled: what to subscribe to."""
        return tuple(sorted({event.integration_topic for event, _ in cls.handlers().values()}))

    @handles
    async def _enrolled(self, event: StudentEnrolled, context: ConsumerContext) -> None:
        await self._keep(event, Standing.ENROLLED, context)

    @handles
    async def _withdrew(self, event: StudentWithdrew, context: ConsumerContext) -> None:
        await self._keep(event, Standing.WITHDRAWN, context)

    async def _keep(
        self,
        event: StudentEnrolled | StudentWithdrew,
        standing: Standing,
        context: ConsumerContext,
    ) -> None:
        enrolment = Enrolment(
            student_id=event.student_id,
            section_id=event.section_id,
            standing=standing,
            sequence=event.sequence,
            changed_at=event.occurred_at,
        )
        await self._ledger.record(context.connection, enrolment)
