"""eventcore's reference application: a university platform.

It grows one bounded context at a time; each context is a package with the same layout
(`domain/`, `application/`, `infrastructure/`, `bootstrap.py`), owns its own tables, and
hears of the others only through their published integration events (transactional
outbox, broker, inbox):

- `registration`: sections, seats and who holds them, correct under peak load; it
  publishes `registration.contracts`;
- `records`: each student's enrolments, fed by registration's contracts.

Run the demo with `python -m university`; `python -m university relay` and
`python -m university records` run the pieces as separate services (see `README.md`).
"""

from __future__ import annotations
