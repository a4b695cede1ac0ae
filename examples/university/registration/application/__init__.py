"""The registration use cases: commands and their handlers, the waitlist process, the
consumer of records' events, what is published, and the queries the read models answer.

An API is a thin layer over it: a command in, a typed `Decision` (or `Accepted`) out,
refusals included; reads through `RegistrationQueries`.
"""

from __future__ import annotations
