"""The registration context: students take and give up seats in course sections.

Start from [`bootstrap`][university.registration.bootstrap.bootstrap], which wires the
context to a database and returns a `Registration` exposing its command handlers.
"""

from __future__ import annotations

from university.registration.bootstrap import Registration, bootstrap

__all__ = ["Registration", "bootstrap"]
