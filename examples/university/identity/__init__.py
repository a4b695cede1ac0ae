"""Identity and access, shared by every context's API: bearer tokens and scopes.

Not a bounded context (it records no events): a small shared kernel. Tokens are JWTs;
a `Principal` is who calls, with the `Scope`s the token grants; `Security.require(...)`
is the FastAPI dependency an endpoint declares. `DevelopmentLogin` issues tokens for the
seeded users in the one-process mode; services verify tokens with a configured key.
"""

from __future__ import annotations

from university.identity.development import DevelopmentLogin, TokenResponse
from university.identity.principal import Principal, Scope
from university.identity.security import SCOPE_DESCRIPTIONS, TOKEN_URL, Security
from university.identity.tokens import InvalidToken, TokenIssuer, TokenVerifier

__all__ = [
    "SCOPE_DESCRIPTIONS",
    "TOKEN_URL",
    "DevelopmentLogin",
    "InvalidToken",
    "Principal",
    "Scope",
    "Security",
    "TokenIssuer",
    "TokenResponse",
    "TokenVerifier",
]
