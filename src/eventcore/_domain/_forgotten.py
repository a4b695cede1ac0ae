"""`SubjectForgotten`: the event a store appends when it forgets a data subject."""

from __future__ import annotations

from datetime import datetime

from eventcore._domain._events import DomainEvent

__all__ = ["SubjectForgotten"]


class SubjectForgotten(DomainEvent, type_name="eventcore.SubjectForgotten"):
    """A data subject's keys were destroyed: their personal data now reads as replacements.

    Appended (to the stream `eventcore-forgotten-{subject_id}`) in the transaction that
    destroys the keys, so projectors following the log learn of it in order and can
    purge what they hold about the subject; translate it into an integration event to
    tell other bounded contexts. It holds no personal data.
    """

    subject_id: str
    group: str | None
    """The key group forgotten, or `None` for every group of the subject."""
    forgotten_at: datetime
    actor: str
    """Who asked for it (a user or service name, not a personal detail)."""
    reason: str
    """Why (a ticket reference, "GDPR art. 17 request"), without personal data."""
    keys_destroyed: int
