"""The registration use cases: commands, the handlers that carry them out, and queries."""

from __future__ import annotations
