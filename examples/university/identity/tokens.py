"""Bearer tokens: JSON Web Tokens issued and verified with PyJWT.

One process (the development mode) issues and verifies with a shared secret (HS256)
it makes at start-up. Separate services verify tokens with a configured key: a shared
secret (`UNIVERSITY_JWT_SECRET`) or an RSA/EC public key (`UNIVERSITY_JWT_PUBLIC_KEY`,
PEM text or a file path) of the identity provider that signs them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from university.identity.principal import Principal, Scope

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "JWT_PUBLIC_KEY",
    "JWT_SECRET",
    "InvalidToken",
    "TokenIssuer",
    "TokenVerifier",
]

ISSUER = "university"
AUDIENCE = "university-api"
JWT_SECRET = "UNIVERSITY_JWT_SECRET"
JWT_PUBLIC_KEY = "UNIVERSITY_JWT_PUBLIC_KEY"
_ASYMMETRIC = ["RS256", "ES256"]


class InvalidToken(Exception):
    """A bearer token is malformed, expired, not ours, or grants no known scope."""


@dataclass(frozen=True)
class TokenVerifier:
    """Checks a bearer token's signature, issuer, audience and expiry."""

    key: str | bytes
    algorithms: list[str] = field(default_factory=lambda: ["HS256"])
    issuer: str = ISSUER
    audience: str = AUDIENCE
    leeway: timedelta = timedelta(seconds=30)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TokenVerifier:
        """The verifier the environment configures; `LookupError` when it configures none."""
        env = os.environ if environ is None else environ
        if public := env.get(JWT_PUBLIC_KEY):
            text = public if "-----BEGIN" in public else Path(public).read_text()
            return cls(text, algorithms=_ASYMMETRIC)
        if secret := env.get(JWT_SECRET):
            return cls(secret)
        raise LookupError(
            f"no token key configured: set {JWT_SECRET} (a shared secret) or "
            f"{JWT_PUBLIC_KEY} (the token issuer's public key, PEM text or a file)"
        )

    def verify(self, token: str) -> Principal:
        """The principal `token` authenticates; `InvalidToken` saying why if none."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("the token has expired") from error
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the token is not valid: {error}") from error
        scopes = {Scope(s) for s in str(claims.get("scope", "")).split() if s in _KNOWN}
        if not scopes:
            raise InvalidToken("the token grants no scope this service knows")
        student = claims.get("student_id")
        return Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(scopes),
            name=str(claims.get("name", "")),
            student_id=str(student) if student is not None else None,
        )


_KNOWN = {scope.value for scope in Scope}


@dataclass(frozen=True)
class TokenIssuer:
    """Signs tokens for principals (the development mode's token endpoint uses it)."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    lifetime: timedelta = timedelta(hours=8)
    issuer: str = ISSUER
    audience: str = AUDIENCE

    def issue(self, principal: Principal, *, now: datetime | None = None) -> str:
        """A signed token for `principal`, valid for `lifetime`."""
        issued = now or datetime.now(UTC)
        claims: dict[str, object] = {
            "sub": principal.subject,
            "scope": " ".join(sorted(principal.scopes)),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + self.lifetime,
        }
        if principal.name:
            claims["name"] = principal.name
        if principal.student_id is not None:
            claims["student_id"] = principal.student_id
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verifier(self) -> TokenVerifier:
        """A verifier of the tokens this issuer signs."""
        return TokenVerifier(self.secret, issuer=self.issuer, audience=self.audience)
