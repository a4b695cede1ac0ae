"""The development mode's token endpoint: tokens for the seeded users, nothing else.

In one process (`python -m university`) there is no identity provider: this router
issues tokens for a fixed set of users through the OAuth2 password flow, so the
OpenAPI page's "Authorize" button works. Every user's password is the one printed at
start-up. Separate services never mount it: they verify tokens from the configured key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Annotated

from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fastapi import APIRouter, Depends
from university.identity.principal import Principal
from university.identity.security import TOKEN_URL
from university.identity.tokens import TokenIssuer

__all__ = ["DevelopmentLogin", "TokenResponse"]


class TokenResponse(BaseModel):
    """An issued bearer token (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class DevelopmentLogin:
    """Known users, one password for all of them, and the issuer that signs their tokens."""

    def __init__(
        self,
        users: Iterable[Principal],
        *,
        issuer: TokenIssuer | None = None,
        password: str | None = None,
    ) -> None:
        self.users = {user.subject: user for user in users}
        self.issuer = issuer or TokenIssuer()
        self.password = password or secrets.token_urlsafe(9)

    def token_for(self, subject: str) -> str:
        """A token for the user `subject` (for the start-up banner and tests)."""
        return self.issuer.issue(self.users[subject])

    def router(self) -> APIRouter:
        """`POST /auth/token`: the OAuth2 password flow for the known users."""
        router = APIRouter(tags=["development login"])

        @router.post(TOKEN_URL, response_model=TokenResponse)
        async def issue_token(
            form: Annotated[OAuth2PasswordRequestForm, Depends()],
        ) -> TokenResponse:
            """Log a seeded user in (development mode only)."""
            user = self.users.get(form.username)
            if user is None or not secrets.compare_digest(form.password, self.password):
                raise HTTPException(401, "unknown user or wrong password")
            lifetime = int(self.issuer.lifetime.total_seconds())
            scope = " ".join(sorted(user.scopes))
            return TokenResponse(
                access_token=self.issuer.issue(user), expires_in=lifetime, scope=scope
            )

        return router
