"""What registration publishes through its outbox: its contracts, never its private events."""

from __future__ import annotations

import pytest

from eventcore import InMemoryBroker, Message, MessageHeaders
from tests.examples.registration.world import CS101_01, CS101_02, MATH101_01, TERM, World
from university.registration import Registration
from university.registration.application.commands import (
    DropSection,
    RegisterForSection,
    SwapSections,
)
from university.registration.contracts import (
    ENROLMENTS,
    WAITLISTS,
    StudentEnrolled,
    StudentWithdrew,
    WaitlistPromotionSkipped,
)

pytestmark = pytest.mark.anyio


async def published(registration: Registration) -> list[Message]:
    broker = InMemoryBroker()
    await registration.relay(broker).publish_pending()
    return list(broker.published)


async def test_seats_waitlists_and_skips_are_published_in_order_per_section(world: World) -> None:
    await world.admit("ada", "bob", "cy", "dan")
    registration = world.registration
    for student_id in ("ada", "bob", "cy", "dan"):
        await registration.register(RegisterForSection(TERM, student_id, CS101_01))
    await registration.register(RegisterForSection(TERM, "cy", MATH101_01))
    await registration.drop(DropSection(TERM, "ada", CS101_01, correlation_id="req-1"))
    await registration.catch_up()  # cy is skipped, dan promoted
    await registration.swap(SwapSections(TERM, "bob", CS101_01, CS101_02))

    messages = await published(registration)

    about_cs101_01 = [
        (m.type.removeprefix("registration."), m.key) for m in messages if m.key == CS101_01
    ]
    assert [t for t, _ in about_cs101_01] == [
        "StudentEnrolled",
        "StudentEnrolled",
        "StudentWaitlisted",
        "StudentWaitlisted",
        "StudentWithdrew",
        "StudentEnrolled",
        "StudentWithdrew",
    ]
    by_type = {m.type: m for m in messages}
    skipped = WaitlistPromotionSkipped.model_validate_json(
        by_type["registration.WaitlistPromotionSkipped"].payload
    )
    assert (skipped.student_id, skipped.reason_code) == ("cy", "time-conflict")
    assert skipped.reason == f"time conflict with {MATH101_01}"
    skip = by_type["registration.WaitlistPromotionSkipped"]
    assert (skip.topic, skip.key) == (WAITLISTS, "cy")
    assert skip.headers[MessageHeaders.CORRELATION_ID] == "req-1"
    promoted = [
        StudentEnrolled.model_validate_json(m.payload)
        for m in messages
        if m.type == "registration.StudentEnrolled" and m.key == CS101_01
    ][-1]
    assert (promoted.student_id, promoted.from_waitlist, promoted.sequence) == ("dan", True, 8)
    [*_, swap_out] = [m for m in messages if m.type == "registration.StudentWithdrew"]
    swapped = StudentWithdrew.model_validate_json(swap_out.payload)
    assert (swapped.student_id, swapped.swapped) == ("bob", True)
    assert {m.topic for m in messages} == {ENROLMENTS, WAITLISTS}


async def test_refusals_and_the_catalogue_stay_private(world: World) -> None:
    await world.admit("ada")
    await world.registration.register(RegisterForSection(TERM, "ada", "2026FA-NOPE-01"))
    assert await published(world.registration) == []
