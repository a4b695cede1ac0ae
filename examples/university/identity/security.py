"""FastAPI dependencies that authenticate a request and check its scopes.

```python
security = Security(TokenVerifier.from_environment())
students_and_staff = security.require(Scope.STUDENT, Scope.ADVISOR, Scope.REGISTRAR)

@router.get("/students/{student_id}/schedule")
async def schedule(student_id: str, caller: Principal = students_and_staff):
    security.ensure_may_act_for(caller, student_id)  # a student sees only their own
```

A missing or invalid token is a 401 problem with `WWW-Authenticate: Bearer`; a token
without the endpoint's scopes a 403 (`error="insufficient_scope"`). The principal's
subject becomes the actor of the events the request records (`set_actor`), so declare
the principal before the unit of work (or as a router dependency).
"""

from __future__ import annotations

from typing import Any

from fastapi.security import OAuth2PasswordBearer
from starlette.exceptions import HTTPException

import fastapi
from eventcore.fastapi import set_actor
from university.identity.principal import Principal, Scope
from university.identity.tokens import InvalidToken, TokenVerifier

__all__ = ["SCOPE_DESCRIPTIONS", "TOKEN_URL", "Security"]

TOKEN_URL = "/auth/token"
SCOPE_DESCRIPTIONS = {
    Scope.STUDENT.value: "a student: their own data only",
    Scope.ADVISOR.value: "an advisor: reads students' schedules and records",
    Scope.REGISTRAR.value: "the registrar's office",
    Scope.SCANNER.value: "a campus card reader: posts scans",
    Scope.ADMIN.value: "an operator: everything",
}


class Security:
    """Authentication (bearer JWTs) and authorisation (scopes) for an API."""

    def __init__(self, verifier: TokenVerifier, *, token_url: str = TOKEN_URL) -> None:
        self.verifier = verifier
        self._scheme = OAuth2PasswordBearer(
            tokenUrl=token_url, scopes=SCOPE_DESCRIPTIONS, auto_error=False
        )

    def require(self, *scopes: Scope) -> Any:
        """A dependency giving the request's `Principal`, which must hold one of
        `scopes` (any authenticated principal when none are named; admins always)."""
        wanted = " ".join(scope.value for scope in scopes)
        scheme = fastapi.Security(self._scheme, scopes=[scope.value for scope in scopes])

        # A default, not `Annotated[...]`: the annotation would be a string naming a local.
        async def principal(token: str | None = scheme) -> Principal:
            if token is None:
                raise HTTPException(
                    401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
                )
            try:
                found = self.verifier.verify(token)
            except InvalidToken as error:
                raise HTTPException(
                    401, str(error), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                ) from error
            if scopes and not found.has(*scopes):
                raise HTTPException(
                    403,
                    f"this needs one of the scopes: {wanted}",
                    headers={
                        "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{wanted}"'
                    },
                )
            set_actor(found.subject)
            return found

        return fastapi.Depends(principal)

    @staticmethod
    def ensure_may_act_for(principal: Principal, student_id: str) -> None:
        """Raise a 403 unless `principal` may see or change `student_id`'s own data."""
        if not principal.may_act_for(student_id):
            raise HTTPException(403, "a student may see and change only their own data")
