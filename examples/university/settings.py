"""Where the university runs: its database and broker, from the environment or the CLI.

| variable                    | default                      | meaning                        |
|-----------------------------|------------------------------|--------------------------------|
| `UNIVERSITY_DATABASE_URL`   | a throwaway SQLite file      | SQLite or PostgreSQL URL       |
| `UNIVERSITY_BROKER_URL`     | an in-memory broker          | `amqp://...` or `nats://...`   |
| `UNIVERSITY_DATABASE_SCHEMA`| the search path              | PostgreSQL schema of the tables|
| `UNIVERSITY_NAMESPACE`      | `university`                 | broker exchange/stream prefix  |

The defaults live inside one process; running the contexts as separate services needs
a database and a broker that every process can reach.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from university.messaging import DEFAULT_NAMESPACE, Broker, broker_for

__all__ = ["BROKER_URL", "DATABASE_SCHEMA", "DATABASE_URL", "NAMESPACE", "Settings"]

DATABASE_URL = "UNIVERSITY_DATABASE_URL"
BROKER_URL = "UNIVERSITY_BROKER_URL"
DATABASE_SCHEMA = "UNIVERSITY_DATABASE_SCHEMA"
NAMESPACE = "UNIVERSITY_NAMESPACE"


@dataclass(frozen=True)
class Settings:
    """The database and broker the contexts use (see the module docstring)."""

    database_url: str | None = None
    """`None`: a throwaway SQLite file, made by the demo."""
    broker_url: str | None = None
    """`None` (or `memory://`): an in-memory broker."""
    schema: str | None = None
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
        broker_url: str | None = None,
    ) -> Settings:
        """Settings from `environ` (default: `os.environ`); the arguments override it."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url or env.get(DATABASE_URL) or None,
            broker_url=broker_url or env.get(BROKER_URL) or None,
            schema=env.get(DATABASE_SCHEMA) or None,
            namespace=env.get(NAMESPACE) or DEFAULT_NAMESPACE,
        )

    @property
    def in_process_broker(self) -> bool:
        """Whether the broker lives in this process only (the in-memory one)."""
        return self.broker_url in (None, "memory://")

    def with_database(self, database_url: str) -> Settings:
        """A copy on `database_url`."""
        return replace(self, database_url=database_url)

    def broker(self) -> Broker:
        """The broker these settings name (a new one on every call)."""
        return broker_for(self.broker_url, namespace=self.namespace)
