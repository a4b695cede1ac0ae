"""The student-records context: which sections each student is enrolled in.

Records never asks registration anything: it learns of enrolments only from
registration's integration events ([`contracts`][university.registration.contracts]),
delivered by a broker and handled through its inbox, so each has exactly one effect.
Start from [`bootstrap`][university.records.bootstrap.bootstrap].
"""

from __future__ import annotations

from university.records.bootstrap import Records, bootstrap

__all__ = ["Records", "bootstrap"]
