"""The registration context: terms, the catalogue, sections and students' schedules.

Start from [`bootstrap`][university.registration.bootstrap.bootstrap], which wires the
context to a database and returns a `Registration` exposing its use cases. Other
contexts learn what happens here only from the integration events of
[`contracts`][university.registration.contracts], the one module they may import.
"""

from __future__ import annotations

from university.registration.bootstrap import Registration, bootstrap

__all__ = ["Registration", "bootstrap"]
