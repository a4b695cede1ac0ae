"""Identity and access: tokens, scopes, the actor in events, the development login."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from pydantic import BaseModel

from eventcore import Aggregate, DomainEvent, InMemoryEventStore, apply
from eventcore.fastapi import Eventcore, UnitOfWorkDep
from fastapi import APIRouter, FastAPI
from university.identity import (
    DevelopmentLogin,
    InvalidToken,
    Principal,
    Scope,
    Security,
    TokenIssuer,
    TokenVerifier,
)

pytestmark = pytest.mark.anyio

ADA = Principal(subject="ada", scopes=frozenset({Scope.STUDENT}), student_id="s-ada")
REGISTRAR = Principal(subject="rita", scopes=frozenset({Scope.REGISTRAR}), name="Rita")
SCANNER = Principal(subject="gate-7", scopes=frozenset({Scope.SCANNER}))


class NoteTaken(DomainEvent, type_name="identity_test.NoteTaken"):
    text: str


class Notebook(Aggregate, aggregate_type="identity_test.Notebook"):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.notes: list[str] = []

    def take(self, text: str) -> None:
        self.record(NoteTaken(text=text))

    @apply
    def _taken(self, event: NoteTaken) -> None:
        self.notes.append(event.text)


class Note(BaseModel):
    text: str


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
async def client(
    issuer: TokenIssuer, store: InMemoryEventStore
) -> AsyncIterator[httpx.AsyncClient]:
    security = Security(issuer.verifier())
    login = DevelopmentLogin([ADA, REGISTRAR, SCANNER], issuer=issuer, password="pw")
    router = APIRouter()
    students_and_staff = security.require(Scope.STUDENT, Scope.ADVISOR, Scope.REGISTRAR)
    registrars = security.require(Scope.REGISTRAR)

    @router.get("/students/{student_id}/notes")
    async def notes(
        student_id: str,
        caller: Principal = students_and_staff,
    ) -> dict[str, str]:
        security.ensure_may_act_for(caller, student_id)
        return {"student": student_id, "caller": caller.subject}

    @router.post("/notebooks/{notebook_id}", status_code=201)
    async def take_note(
        notebook_id: str,
        body: Note,
        uow: UnitOfWorkDep,
        caller: Principal = registrars,
    ) -> dict[str, str]:
        notebook = Notebook(notebook_id)
        notebook.take(body.text)
        await uow.add(notebook)
        return {"by": caller.subject}

    service = Eventcore(store)
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)
    app.include_router(router)
    app.include_router(login.router())
    async with service.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def bearer(issuer: TokenIssuer, principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.issue(principal)}"}


def test_a_token_round_trips_its_principal(issuer: TokenIssuer) -> None:
    assert issuer.verifier().verify(issuer.issue(ADA)) == ADA
    assert issuer.verifier().verify(issuer.issue(REGISTRAR)) == REGISTRAR


def test_tokens_that_are_expired_foreign_or_without_scope_are_refused(
    issuer: TokenIssuer,
) -> None:
    verifier = issuer.verifier()
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(issuer.issue(ADA, now=long_ago))
    with pytest.raises(InvalidToken, match="not valid"):
        verifier.verify(TokenIssuer().issue(ADA))  # signed with another key
    with pytest.raises(InvalidToken, match="not valid"):
        verifier.verify("not-a-token")
    unknown = jwt.encode(
        {"sub": "x", "scope": "root", "iss": "university", "aud": "university-api",
         "iat": datetime.now(UTC), "exp": datetime.now(UTC) + timedelta(hours=1)},
        issuer.secret,
        algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(InvalidToken, match="no scope"):
        verifier.verify(unknown)


def test_the_verifier_comes_from_the_environment(issuer: TokenIssuer) -> None:
    verifier = TokenVerifier.from_environment({"UNIVERSITY_JWT_SECRET": issuer.secret})
    assert verifier.verify(issuer.issue(SCANNER)) == SCANNER
    with pytest.raises(LookupError, match="UNIVERSITY_JWT_SECRET"):
        TokenVerifier.from_environment({})


async def test_no_token_is_a_401_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/students/s-ada/notes")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "a bearer token is required"


async def test_a_bad_token_is_a_401_saying_why(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/students/s-ada/notes", headers={"Authorization": "Bearer nonsense"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_scope_reaches_only_its_endpoints(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    response = await client.get("/students/s-ada/notes", headers=bearer(issuer, SCANNER))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    response = await client.post("/notebooks/n1", json={"text": "hi"}, headers=bearer(issuer, ADA))
    assert response.status_code == 403


async def test_a_student_sees_only_their_own_data(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    own = await client.get("/students/s-ada/notes", headers=bearer(issuer, ADA))
    assert own.status_code == 200
    assert own.json() == {"student": "s-ada", "caller": "ada"}
    other = await client.get("/students/s-bob/notes", headers=bearer(issuer, ADA))
    assert other.status_code == 403
    assert other.headers["content-type"] == "application/problem+json"
    staff = await client.get("/students/s-bob/notes", headers=bearer(issuer, REGISTRAR))
    assert staff.status_code == 200


async def test_an_admin_holds_every_scope(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    admin = Principal(subject="op", scopes=frozenset({Scope.ADMIN}))
    response = await client.get("/students/s-bob/notes", headers=bearer(issuer, admin))
    assert response.status_code == 200


async def test_the_principal_is_the_actor_of_the_events(
    client: httpx.AsyncClient, issuer: TokenIssuer, store: InMemoryEventStore
) -> None:
    response = await client.post(
        "/notebooks/n1", json={"text": "hello"}, headers=bearer(issuer, REGISTRAR)
    )
    assert response.status_code == 201, response.text
    [recorded] = await store.read_stream("n1")
    assert recorded.metadata.actor == "rita"


async def test_the_development_login_issues_tokens_for_known_users(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    response = await client.post("/auth/token", data={"username": "ada", "password": "pw"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "student"
    assert issuer.verifier().verify(body["access_token"]) == ADA
    wrong = await client.post("/auth/token", data={"username": "ada", "password": "no"})
    assert wrong.status_code == 401
    unknown = await client.post("/auth/token", data={"username": "eve", "password": "pw"})
    assert unknown.status_code == 401


async def test_the_openapi_document_describes_the_oauth2_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert set(scheme["flows"]["password"]["scopes"]) == {s.value for s in Scope}
