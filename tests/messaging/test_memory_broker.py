"""`InMemoryBroker` and its queues pass the broker contract, like the real brokers."""

from __future__ import annotations

import pytest

from eventcore import InMemoryBroker, InMemoryQueue
from eventcore.testing import BrokerContract


class InMemoryDestination:
    """A broker with one queue bound to `contract.*`."""

    topic = "contract.orders"

    def __init__(self) -> None:
        self.broker = InMemoryBroker()
        self.queue = self.broker.queue("contract", ["contract.*"])

    def publisher(self) -> InMemoryBroker:
        return self.broker

    def source(self) -> InMemoryQueue:
        return self.queue


class TestInMemoryBroker(BrokerContract):
    @pytest.fixture
    def destination(self) -> InMemoryDestination:
        return InMemoryDestination()
