"""How the registration context is stored: its event tables, its student directory, its
read models (projections) and their queries, on SQLite or PostgreSQL."""

from __future__ import annotations
