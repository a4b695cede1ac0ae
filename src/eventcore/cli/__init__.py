"""The `eventcore` command line: schema, global log, projections, dead letters, outbox, inbox.

Install it with `pip install 'eventcore-es[cli]'` (it needs click), then run
`eventcore --help`. The commands are an adapter on top of the public API; see the
[command-line guide](../how-to/cli.md). `import eventcore` never needs click: only
this package does, and `main` says so plainly when it is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventcore.cli._commands import cli as cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the `eventcore` command (the console script's entry point); exits when done."""
    try:
        from eventcore.cli._commands import cli
    except ModuleNotFoundError as error:
        if error.name != "click":
            raise
        sys.exit("eventcore: the command line needs click: pip install 'eventcore-es[cli]'")
    cli.main(args=None if argv is None else list(argv), prog_name="eventcore")


def __getattr__(name: str) -> Any:
    """`cli`, the click group, is imported on first use (click is an optional extra)."""
    if name == "cli":
        from eventcore.cli._commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
