"""Messages between bounded contexts: the envelope, and the broker-facing protocols."""
