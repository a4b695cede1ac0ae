"""The persistence layer: the event store interface, codecs and the in-memory store."""
