"""How the records context is stored: its own tables, prefixed `records_`."""

from __future__ import annotations
