"""The registration domain: events, the `Section` aggregate and its errors.

Pure Python and pydantic (through eventcore's domain types): no I/O, no database.
"""

from __future__ import annotations
