"""Aggregates: recording and applying events, versions, rehydration, class options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from eventcore import Aggregate, AggregateError, DomainEvent, NewEvent, apply


class Opened(DomainEvent, type_name="test_aggregate.Opened"):
    """The account was opened."""

    owner: str


class Deposited(DomainEvent, type_name="test_aggregate.Deposited"):
    """Money was paid in."""

    amount: int


class Frozen(DomainEvent, type_name="test_aggregate.Frozen"):
    """No @apply handler exists for this event in `Account`."""


class Account(Aggregate):
    """A small aggregate."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0

    @classmethod
    def open(cls, id: str, owner: str) -> Account:
        """Open an account."""
        account = cls(id)
        account.record(Opened(owner=owner))
        return account

    def deposit(self, amount: int) -> None:
        """Pay in `amount`."""
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.record(Deposited(amount=amount))

    @apply
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @apply
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


class BonusAccount(Account, aggregate_type="test_aggregate.BonusAccount"):
    """Overrides a handler of its base (same name)."""

    @apply
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount * 2


class RenamedHandlerAccount(Account):
    """Handles `Deposited` under another method name: the subclass's handler wins."""

    @apply
    def _on_deposit(self, event: Deposited) -> None:
        self.balance += event.amount + 1


class PlainOverrideAccount(Account):
    """Overrides a handler without repeating `@apply`: the override still runs."""

    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount * 10


class IntAnnotated(Aggregate):
    """Its handler is annotated with a type that is not a DomainEvent."""

    @apply
    def _on(self, event: int) -> None:
        pass


class Unannotated(Aggregate):
    """Its handler has no event annotation."""

    @apply
    def _on(self, event) -> None:  # type: ignore[no-untyped-def]
        pass


def _pending(aggregate: Aggregate) -> list[DomainEvent]:
    return [p.event for p in aggregate.pending_events]


# -- recording and applying --------------------------------------------------------------


def test_new_aggregate_is_at_version_zero() -> None:
    account = Account("a-1")
    assert (account.id, account.version, account.committed_version) == ("a-1", 0, 0)
    assert account.pending_events == ()


def test_record_applies_the_event_and_keeps_it_pending() -> None:
    account = Account.open("a-1", "ada")
    account.deposit(5)
    account.deposit(7)
    assert (account.owner, account.balance) == ("ada", 12)
    assert account.version == 3
    assert account.committed_version == 0
    pending = account.pending_events
    assert all(isinstance(p, NewEvent) for p in pending)
    assert [p.event for p in pending] == [
        Opened(owner="ada"),
        Deposited(amount=5),
        Deposited(amount=7),
    ]
    assert len({p.event_id for p in pending}) == 3


def test_pending_events_is_a_snapshot_tuple() -> None:
    account = Account.open("a-1", "ada")
    before = account.pending_events
    account.deposit(1)
    assert len(before) == 1
    assert len(account.pending_events) == 2


def test_mark_saved_moves_the_committed_version() -> None:
    account = Account.open("a-1", "ada")
    account.deposit(5)
    account.mark_saved()
    assert _pending(account) == []
    assert (account.version, account.committed_version) == (2, 2)
    account.deposit(1)
    assert (account.version, account.committed_version) == (3, 2)
    assert _pending(account) == [Deposited(amount=1)]


def test_a_failed_command_records_nothing() -> None:
    account = Account.open("a-1", "ada")
    with pytest.raises(ValueError, match="positive"):
        account.deposit(0)
    assert account.version == 1
    assert len(account.pending_events) == 1


def test_missing_apply_handler() -> None:
    account = Account.open("a-1", "ada")
    with pytest.raises(AggregateError, match="no @apply handler for Frozen"):
        account.record(Frozen())
    assert account.version == 1  # nothing applied, nothing pending
    assert [p.event for p in account.pending_events] == [Opened(owner="ada")]


# -- rehydration ------------------------------------------------------------------------


def test_rehydrate_replays_history_without_pending_events() -> None:
    history = [Opened(owner="bob"), Deposited(amount=3), Deposited(amount=4)]
    account = Account.rehydrate("a-2", history)
    assert isinstance(account, Account)
    assert (account.id, account.owner, account.balance) == ("a-2", "bob", 7)
    assert (account.version, account.committed_version) == (3, 3)
    assert account.pending_events == ()


def test_rehydrate_continues_from_a_start_instance() -> None:
    start = Account.rehydrate("a-2", [Opened(owner="bob"), Deposited(amount=3)])
    account = Account.rehydrate("a-2", [Deposited(amount=10)], start=start)
    assert account is start
    assert (account.balance, account.version) == (13, 3)


def test_rehydrate_refuses_a_start_of_another_class() -> None:
    class Other(Aggregate):
        pass

    with pytest.raises(AggregateError, match="cannot continue"):
        Account.rehydrate("a-2", [], start=Other("a-2"))


def test_rehydrate_with_an_unhandled_event() -> None:
    with pytest.raises(AggregateError, match="no @apply handler for Frozen"):
        Account.rehydrate("a-3", [Opened(owner="c"), Frozen()])


def test_rehydrate_of_nothing_is_a_new_aggregate() -> None:
    account = Account.rehydrate("a-4", [])
    assert (account.version, account.owner) == (0, "")


# -- inheritance and declaration errors --------------------------------------------------


def test_subclass_overrides_a_handler() -> None:
    bonus = BonusAccount.open("b-1", "ada")
    bonus.deposit(5)
    assert bonus.balance == 10
    assert BonusAccount.rehydrate("b-1", [Opened(owner="x"), Deposited(amount=1)]).balance == 2
    assert Account.rehydrate("b-1", [Deposited(amount=1)]).balance == 1  # base unchanged


def test_subclass_handler_under_another_name_wins() -> None:
    account = RenamedHandlerAccount.open("r-1", "ada")
    account.deposit(5)
    assert account.owner == "ada"  # the inherited handler still applies
    assert account.balance == 6


def test_undecorated_override_of_a_handler_runs() -> None:
    account = PlainOverrideAccount.open("p-1", "ada")
    account.deposit(5)
    assert account.balance == 50
    assert PlainOverrideAccount.rehydrate("p-1", [Deposited(amount=1)]).balance == 10


def test_handler_annotated_with_a_non_event_type() -> None:
    with pytest.raises(AggregateError, match=r"IntAnnotated\._on: annotate the event parameter"):
        IntAnnotated.rehydrate("x", [Opened(owner="a")])


def test_handler_without_annotation() -> None:
    with pytest.raises(AggregateError, match="annotate the event parameter"):
        Unannotated("x").record(Opened(owner="a"))


def test_handler_annotation_that_cannot_be_resolved() -> None:
    class LocalEvent(DomainEvent, type_name="test_aggregate.LocalEvent", registry=None):
        pass

    class LocalAggregate(Aggregate):
        @apply
        def _on(self, event: LocalEvent) -> None:
            pass

    with pytest.raises(AggregateError, match="cannot resolve its event annotation"):
        LocalAggregate("x").record(LocalEvent())


# -- class keyword arguments -------------------------------------------------------------


def test_aggregate_type_defaults_to_the_class_name() -> None:
    assert Account.aggregate_type == "Account"
    assert RenamedHandlerAccount.aggregate_type == "RenamedHandlerAccount"


def test_aggregate_type_keyword() -> None:
    assert BonusAccount.aggregate_type == "test_aggregate.BonusAccount"


@pytest.mark.parametrize("every", [0, -5])
def test_snapshot_every_must_be_positive(every: int) -> None:
    with pytest.raises(AggregateError, match="snapshot_every must be >= 1"):

        class Snappy(Aggregate, snapshot_every=every):
            pass


def test_snapshot_options() -> None:
    class Snappy(Aggregate, snapshot_every=10, snapshot_version=3):
        def to_snapshot(self) -> Mapping[str, Any]:
            return {"version": self.version}

    assert (Snappy.snapshot_every, Snappy.snapshot_version) == (10, 3)
    assert (Account.snapshot_every, Account.snapshot_version) == (None, 1)
    assert Snappy("s").to_snapshot() == {"version": 0}


def test_snapshot_methods_must_be_implemented() -> None:
    with pytest.raises(AggregateError, match="must implement to_snapshot"):
        Account("a").to_snapshot()
    with pytest.raises(AggregateError, match="must implement restore_snapshot"):
        Account("a").restore_snapshot({})


def test_repr_names_id_and_version() -> None:
    assert repr(Account.open("a-9", "x")) == "<Account id='a-9' version=1>"
