"""Who is calling: the authenticated principal and the scopes a token grants."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict

__all__ = ["Principal", "Scope"]


class Scope(enum.StrEnum):
    """What a token lets its bearer do. Each endpoint names the scopes it admits."""

    STUDENT = "student"
    """A student: their own schedule, registrations and record only."""
    ADVISOR = "advisor"
    """An advisor: reads students' schedules and records."""
    REGISTRAR = "registrar"
    """The registrar's office: terms, catalogue, sections, holds, imports, erasure."""
    SCANNER = "scanner"
    """A campus card reader: posts scans, nothing else."""
    ADMIN = "admin"
    """An operator: everything, including operational endpoints."""


class Principal(BaseModel):
    """The authenticated caller of a request, from its bearer token.

    `subject` is the actor recorded in every event the request causes. A student's
    token also names the student it belongs to (`student_id`): endpoints that show or
    change a student's data compare it with the student in the path.
    """

    model_config = ConfigDict(frozen=True)

    subject: str
    scopes: frozenset[Scope]
    name: str = ""
    student_id: str | None = None

    def has(self, *scopes: Scope) -> bool:
        """Whether the principal holds any of `scopes` (an admin holds them all)."""
        return Scope.ADMIN in self.scopes or any(scope in self.scopes for scope in scopes)

    def may_act_for(self, student_id: str) -> bool:
        """Whether the principal may see or change `student_id`'s own data: the student
        themselves, or staff (advisor, registrar, admin)."""
        if self.has(Scope.ADVISOR, Scope.REGISTRAR):
            return True
        return Scope.STUDENT in self.scopes and self.student_id == student_id
