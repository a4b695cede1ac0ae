"""Given/when/then tests for aggregates, without a store.

```python
AggregateScenario(Section).given(SectionOpened(capacity=1)).when(
    lambda section: section.register("s-1")
).then(StudentRegistered(student_id="s-1"))
```
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from eventcore import Aggregate, DomainEvent

__all__ = ["AggregateScenario"]

A = TypeVar("A", bound=Aggregate)
DEFAULT_AGGREGATE_ID = "test-aggregate"


class AggregateScenario(Generic[A]):
    """Test one aggregate command: past events given, a command run, the outcome checked.

    - [`given`][eventcore.testing.AggregateScenario.given] the aggregate's history,
    - [`when`][eventcore.testing.AggregateScenario.when] a command runs on it (or
      [`when_created`][eventcore.testing.AggregateScenario.when_created] a factory makes it),
    - [`then`][eventcore.testing.AggregateScenario.then] it recorded exactly these events,
      [`then_raises`][eventcore.testing.AggregateScenario.then_raises] an error, or
      [`then_nothing`][eventcore.testing.AggregateScenario.then_nothing] happened.

    `then` and `then_nothing` also rebuild a fresh aggregate from the given and the new
    events with [`Aggregate.rehydrate`][eventcore.Aggregate.rehydrate] and compare its
    public state (attributes not starting with `_`) with the aggregate the command ran
    on. A difference means state changed outside an `@apply` handler, or a handler is not
    pure: loading the aggregate from the store would not give the same state.

    Failed expectations raise `AssertionError` with expected and actual side by side.

    Args:
        aggregate_type: the aggregate class under test.
        aggregate_id: the id of the aggregate built from the given events.
    """

    def __init__(self, aggregate_type: type[A], aggregate_id: str = DEFAULT_AGGREGATE_ID) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self._given: list[DomainEvent] = []
        self._aggregate: A | None = None
        self._error: BaseException | None = None
        self._result: object = None

    def given(self, *events: DomainEvent) -> AggregateScenario[A]:
        """Add past events: the aggregate's history before the command (may be repeated)."""
        if self._aggregate is not None:
            raise RuntimeError("given() must come before when()")
        self._given.extend(events)
        return self

    def when(self, command: Callable[[A], object]) -> AggregateScenario[A]:
        """Rebuild the aggregate from the given events and run `command` on it.

        `command` is a synchronous callable taking the aggregate, usually a lambda calling
        one command method. An exception it raises is kept for `then_raises`.
        """
        self._start()
        aggregate = self.aggregate_type.rehydrate(self.aggregate_id, self._given)
        self._aggregate = aggregate
        self._run(lambda: command(aggregate))
        return self

    def when_created(self, factory: Callable[[], A]) -> AggregateScenario[A]:
        """Run a creation command: `factory` makes a new aggregate (no given events allowed).

        ```python
        AggregateScenario(Section).when_created(lambda: Section.open("cs101", 30)).then(
            SectionOpened(capacity=30)
        )
        ```
        """
        self._start()
        if self._given:
            raise RuntimeError("when_created() makes a new aggregate: it cannot have given events")
        self._run(lambda: self._created(factory()))
        return self

    def then(self, *expected: DomainEvent) -> AggregateScenario[A]:
        """Check the command succeeded and recorded exactly `expected`, in order."""
        aggregate = self._succeeded()
        actual = self.events
        if actual != list(expected):
            raise AssertionError(
                "the command recorded other events than expected\n"
                f"expected events:\n{_listing(expected)}\nactual events:\n{_listing(actual)}"
            )
        self._check_replay(aggregate)
        return self

    def then_nothing(self) -> AggregateScenario[A]:
        """Check the command succeeded without recording any event."""
        return self.then()

    def then_raises(
        self, error: type[BaseException], *, match: str | None = None
    ) -> AggregateScenario[A]:
        """Check the command raised `error` (or a subclass), its message containing `match`."""
        self._require_when()
        raised = self._error
        if raised is None:
            raise AssertionError(
                f"expected {error.__name__} to be raised, but the command succeeded and "
                f"recorded:\n{_listing(self.events)}"
            )
        if not isinstance(raised, error):
            raise AssertionError(
                f"expected {error.__name__} to be raised, got {type(raised).__name__}: {raised}"
            ) from raised
        if match is not None and match not in str(raised):
            raise AssertionError(
                f"{type(raised).__name__} was raised, but its message {str(raised)!r} "
                f"does not contain {match!r}"
            ) from raised
        return self

    @property
    def aggregate(self) -> A:
        """The aggregate the command ran on (or the one the factory created)."""
        self._require_when()
        if self._aggregate is None:
            raise RuntimeError("the creation command raised: there is no aggregate") from (
                self._error
            )
        return self._aggregate

    @property
    def events(self) -> list[DomainEvent]:
        """The events the command recorded (the aggregate's pending events)."""
        if self._aggregate is None:
            return []
        return [pending.event for pending in self._aggregate.pending_events]

    @property
    def result(self) -> object:
        """What the command returned."""
        self._require_when()
        return self._result

    # -- internals --------------------------------------------------------------------

    def _start(self) -> None:
        if self._aggregate is not None or self._error is not None:
            raise RuntimeError("when() or when_created() may be called only once per scenario")

    def _created(self, aggregate: A) -> A:
        if not isinstance(aggregate, self.aggregate_type):
            raise TypeError(
                f"the factory returned {aggregate!r}, not a {self.aggregate_type.__name__}"
            )
        self._aggregate = aggregate
        return aggregate

    def _run(self, command: Callable[[], object]) -> None:
        try:
            result = command()
        except Exception as error:  # kept for then_raises()
            self._error = error
            return
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError("the command returned an awaitable: scenarios run sync commands only")
        self._result = result

    def _require_when(self) -> None:
        if self._aggregate is None and self._error is None:
            raise RuntimeError("call when() or when_created() first")

    def _succeeded(self) -> A:
        self._require_when()
        if self._error is not None:
            raise AssertionError(
                f"the command raised {type(self._error).__name__}: {self._error}"
            ) from self._error
        assert self._aggregate is not None
        return self._aggregate

    def _check_replay(self, aggregate: A) -> None:
        history = [*self._given, *self.events]
        fresh = type(aggregate).rehydrate(aggregate.id, history)
        differences = _differences(_public_state(aggregate), _public_state(fresh))
        if differences:
            raise AssertionError(
                "the aggregate's state differs from the state rebuilt from its events "
                "(state changed outside an @apply handler, or a handler is not pure):\n"
                + "\n".join(differences)
            )


def _public_state(aggregate: Aggregate) -> dict[str, Any]:
    return {name: value for name, value in vars(aggregate).items() if not name.startswith("_")}


def _differences(live: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> list[str]:
    missing = object()
    lines = []
    for name in sorted(set(live) | set(rebuilt)):
        a, b = live.get(name, missing), rebuilt.get(name, missing)
        if a is missing or b is missing or a != b:
            lines.append(
                f"  {name}: after the command {_show(a, missing)}, rebuilt {_show(b, missing)}"
            )
    return lines


def _show(value: object, missing: object) -> str:
    return "<not set>" if value is missing else repr(value)


def _listing(events: Iterable[DomainEvent]) -> str:
    lines = [f"  {n}. {event!r}" for n, event in enumerate(events, start=1)]
    return "\n".join(lines) if lines else "  (none)"
