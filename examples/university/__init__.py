"""eventcore's reference application: a university platform.

It grows one bounded context at a time; each context is a package with the same layout
(`domain/`, `application/`, `infrastructure/`, `bootstrap.py`) and owns its own tables:

- `registration`: sections, seats and who holds them, correct under peak load.

Run the demo with `python -m university` (see `README.md`).
"""

from __future__ import annotations
