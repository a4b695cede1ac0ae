"""Test kit: given/when/then for aggregates and the event store contract suite."""
