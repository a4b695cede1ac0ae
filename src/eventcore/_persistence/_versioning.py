"""Checking an append's expected version against a stream's actual one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from eventcore._exceptions import DuplicateEventError, WrongExpectedVersionError
from eventcore._persistence._store import AppendResult, ExpectedVersion

__all__ = ["check_all_or_none_stored", "check_already_stored", "check_expected_version"]


def check_expected_version(stream_id: str, expected: int | ExpectedVersion, actual: int) -> None:
    """Raise `WrongExpectedVersionError` unless a stream at `actual` satisfies `expected`."""
    if expected is ExpectedVersion.ANY:
        return
    if expected is ExpectedVersion.STREAM_EXISTS:
        ok = actual > 0
    elif expected is ExpectedVersion.NO_STREAM:
        ok = actual == 0
    else:
        ok = actual == expected
    if not ok:
        raise WrongExpectedVersionError(stream_id, expected, actual)


def check_already_stored(
    stream_id: str,
    event_ids: Sequence[uuid.UUID],
    existing: Sequence[tuple[uuid.UUID, str, int]],
    current_version: int,
) -> AppendResult | None:
    """Decide what to do when some of an append's event ids are stored already.

    `existing` holds `(event_id, stream_id, global_position)` of the stored ones. If all
    the append's events are stored in this stream, the append is an idempotent retry and
    its result is returned. If none are, `None` is returned (go ahead and write). A
    partial overlap, or ids stored in another stream, raises `DuplicateEventError`.
    """
    if not existing:
        return None
    if len(existing) == len(event_ids) and all(row[1] == stream_id for row in existing):
        position_of = {row[0]: row[2] for row in existing}
        positions = tuple(position_of[event_id] for event_id in event_ids)
        return AppendResult(stream_id, current_version, positions, already_stored=True)
    raise DuplicateEventError(
        stream_id,
        [str(row[0]) for row in existing],
        "are stored already, but not exactly this append's events in this stream",
    )


def check_all_or_none_stored(results: Sequence[AppendResult | None]) -> None:
    """Refuse a multi-stream append of which some streams are stored already and some not.

    Appends are atomic, so a true retry finds all of its streams stored or none: a mix
    means event ids were reused in a different append.
    """
    stored = [r for r in results if r is not None]
    if stored and len(stored) != len(results):
        raise DuplicateEventError(
            stored[0].stream_id,
            [],
            "were stored by an earlier append that did not include all of this append's streams",
        )
