"""`python -m eventcore.cli`: the same as the `eventcore` command."""

from __future__ import annotations

from eventcore.cli import main

if __name__ == "__main__":
    main()
