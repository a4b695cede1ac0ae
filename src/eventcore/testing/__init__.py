"""Test kit: given/when/then for aggregates and the event store contract suite.

- [`AggregateScenario`][eventcore.testing.AggregateScenario] tests an aggregate's
  commands without a store: given past events, when a command runs, then these events.
- [`EventStoreContract`][eventcore.testing.EventStoreContract] is the pytest suite every
  [`EventStore`][eventcore.EventStore] passes; subclass it to test your own store.
- [`BrokerContract`][eventcore.testing.BrokerContract] is the pytest suite every broker
  adapter (a [`Publisher`][eventcore.Publisher] and its
  [`MessageSource`][eventcore.MessageSource]) passes; subclass it to test your own.
- [`PersonalDataContract`][eventcore.testing.PersonalDataContract] is the pytest suite of
  personal data (encryption at rest, forgetting subjects, key rotation) every store
  with a key provider passes.
- `eventcore.testing.pytest_plugin` provides a PostgreSQL store in a throwaway schema.

This package needs pytest.
"""

from __future__ import annotations

import pytest

# Plain `assert`s in the contract suite get pytest's detailed failure messages.
pytest.register_assert_rewrite(
    "eventcore.testing._contract",
    "eventcore.testing._broker_contract",
    "eventcore.testing._personal_contract",
    "eventcore.testing._forgetting_contract",
)

from eventcore.testing._broker_contract import BrokerContract, BrokerDestination  # noqa: E402
from eventcore.testing._contract import EventStoreContract  # noqa: E402
from eventcore.testing._personal_contract import PersonalDataContract, StoreFactory  # noqa: E402
from eventcore.testing._scenario import AggregateScenario  # noqa: E402

__all__ = [
    "AggregateScenario",
    "BrokerContract",
    "BrokerDestination",
    "EventStoreContract",
    "PersonalDataContract",
    "StoreFactory",
]
