"""What the projection and process-manager workers share: running under a lease, forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio

from eventcore._exceptions import LeaseLostError, ProjectionError, StoreConnectionError
from eventcore._persistence._leases import ProjectionLease, ProjectionLeases

__all__ = ["follow_under_lease", "single_failure"]

_log = logging.getLogger("eventcore.projections")


async def follow_under_lease(
    leases: ProjectionLeases,
    key: str,
    follow: Callable[[ProjectionLease], Awaitable[None]],
    *,
    retry: float,
) -> None:
    """Run `follow` whenever this process holds the lease `key`; try again every `retry` s.

    A lease held by another worker, or lost while following, just means waiting and
    competing again; so does a lost database connection (a restart, a failover: the
    batch in flight was rolled back, or committed with its checkpoint, and following
    resumes from the checkpoint). Any other error propagates.
    """
    while True:
        try:
            async with leases.hold(key) as lease:
                if lease is not None:
                    await follow(lease)
        except LeaseLostError as error:
            _log.warning("%s stopped here: %s", key, error)
        except StoreConnectionError as error:
            _log.warning("%s stopped here, its database connection failed: %s", key, error)
        await anyio.sleep(retry)


@contextmanager
def single_failure() -> Iterator[None]:
    """Re-raise a task group's lone `ProjectionError` as itself, not as a group.

    A worker's task group wraps the error of the one follower that gave up (the others
    are cancelled); callers should see the `ProjectionError` its docstring promises.
    """
    try:
        yield
    except BaseExceptionGroup as errors:
        if len(errors.exceptions) == 1 and isinstance(errors.exceptions[0], ProjectionError):
            raise errors.exceptions[0] from errors.exceptions[0].__cause__
        raise
