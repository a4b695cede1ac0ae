"""The domain layer: events, metadata and aggregates. Standard library and pydantic only."""
