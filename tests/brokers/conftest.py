"""Broker fixtures: the RabbitMQ and NATS URLs, skipping (failing under `CI=true`) when
the server cannot be reached."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

RABBITMQ_URL_ENV = "EVENTCORE_TEST_RABBITMQ_URL"
NATS_URL_ENV = "EVENTCORE_TEST_NATS_URL"


def _reachable(name: str, env: str, default: str, port: int) -> str:
    url = os.environ.get(env, default)
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or port)
    try:
        with socket.create_connection(address, timeout=2):
            pass
    except OSError as error:
        message = f"{name} at {address[0]}:{address[1]} is unreachable ({env}): {error!r}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI=true: {name} tests must run)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The RabbitMQ URL (`EVENTCORE_TEST_RABBITMQ_URL` or the local default)."""
    return _reachable("RabbitMQ", RABBITMQ_URL_ENV, "amqp://guest:guest@127.0.0.1:5672/", 5672)


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS URL (`EVENTCORE_TEST_NATS_URL` or the local default)."""
    return _reachable("NATS", NATS_URL_ENV, "nats://127.0.0.1:4222", 4222)
