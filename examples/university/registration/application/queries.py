"""Reads for the registration context, straight from the event store.

Enough for a walking skeleton; a busy section would get a read model (a projection)
instead of replaying its stream on every read.
"""

from __future__ import annotations

from eventcore import AggregateNotFoundError, EventStore, RecordedEvent, Repository
from university.registration.domain.errors import SectionNotFound
from university.registration.domain.section import Section

__all__ = ["get_section", "section_history"]


async def get_section(store: EventStore, section_id: str) -> Section:
    """The section as it is now (`SectionNotFound` if it was never opened)."""
    try:
        return await Repository(Section, store).get(section_id)
    except AggregateNotFoundError as error:
        raise SectionNotFound(section_id) from error


async def section_history(store: EventStore, section_id: str) -> list[RecordedEvent]:
    """Every event of the section, oldest first, with its metadata."""
    return await store.read_stream(section_id)
