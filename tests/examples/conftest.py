"""Fixtures of the example's tests; the broker URLs come from the broker tests' fixtures."""

from __future__ import annotations

from tests.brokers.conftest import nats_url, rabbitmq_url

__all__ = ["nats_url", "rabbitmq_url"]
