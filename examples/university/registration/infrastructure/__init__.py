"""How the registration context is stored: its own event tables, on SQLite or PostgreSQL."""

from __future__ import annotations
