"""The registration domain: terms, the catalogue, sections and students' schedules.

Pure Python and pydantic (through eventcore's domain types): no I/O, no database, no
clock (the time of a decision is passed in). What registration knows of a student
(level, earned credits, holds, completed courses) is a `StudentRecord` value, learnt from
the records context's integration events by the application layer.
"""

from __future__ import annotations
