"""Running a command's coroutine: errors as one line, SIGINT/SIGTERM as a clean stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

import anyio
import click
from anyio.abc import TaskGroup
from sqlalchemy.exc import SQLAlchemyError

from eventcore import EventcoreError

__all__ = ["run", "until_signalled"]

T = TypeVar("T")


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` on a fresh event loop; eventcore and database errors become one line."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await _leftovers()

    with _one_line_errors():
        return anyio.run(main, backend="asyncio")


async def _leftovers(timeout: float = 5.0) -> None:
    """Let tasks that outlive the work end by themselves (for up to `timeout` seconds).

    A connection cut short by a cancellation (SIGINT/SIGTERM) is closed by a task the
    database adapter leaves behind; cancelling it when the event loop closes can hang
    aiosqlite, so it is awaited instead.
    """
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    if others:
        await asyncio.wait(others, timeout=timeout)


async def until_signalled(work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work` until it returns or SIGINT/SIGTERM arrives; say whether a signal stopped it.

    On a signal, `work` is cancelled (so it cleans up as on any cancellation). Where
    signals cannot be received (not the main thread, Windows), `work` just runs, and
    Ctrl-C interrupts it as usual.
    """
    stopped = False
    with ExitStack() as stack:
        try:
            signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        except (NotImplementedError, ValueError, RuntimeError):
            await work()
            return False

        async def stop_on_signal(group: TaskGroup) -> None:
            nonlocal stopped
            async for _ in signals:
                stopped = True
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(stop_on_signal, group)
            await work()
            group.cancel_scope.cancel()
    return stopped


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except BaseException as error:
        found = _reportable(error)
        if found is None:
            raise
        if isinstance(found, click.ClickException):
            raise found from None
        text = str(found).strip().splitlines()
        message = text[0] if text else type(found).__name__
        if not isinstance(found, EventcoreError):
            message = f"{type(found).__name__}: {message}"
        raise click.ClickException(message) from None


def _reportable(error: BaseException) -> BaseException | None:
    """The error to report in one line (looking inside task groups), if it is one."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _reportable(inner)
            if found is not None:
                return found
        return None
    if isinstance(error, EventcoreError | SQLAlchemyError | OSError | click.ClickException):
        return error
    return None
