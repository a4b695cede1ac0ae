"""NATS JetStream for eventcore's outbox and consumers (`pip install 'eventcore-es[nats]'`).

[`NatsPublisher`][eventcore.nats.NatsPublisher] publishes an outbox relay's messages to
JetStream (subject: the message's topic) and waits for JetStream's acks; JetStream
de-duplicates them on their message id (`Nats-Msg-Id`).
[`NatsSource`][eventcore.nats.NatsSource] consumes a stream through a durable pull
consumer. Both use [nats-py](https://nats-io.github.io/nats.py/).

```python
from eventcore.nats import NatsPublisher, NatsSource

SERVERS = "nats://localhost:4222"

# Given stream and subjects, the publisher creates the stream (or adds the subjects).
async with NatsPublisher(SERVERS, stream="ENROLMENT", subjects=["enrolment.>"]) as publisher:
    failures = await publisher.publish(messages)  # {message_id: reason} of the failed

source = NatsSource(SERVERS, stream="ENROLMENT", subjects="enrolment.>", durable="billing")
async with source.deliveries() as deliveries:
    async for delivery in deliveries:
        ...  # handle delivery.message
        await delivery.ack()
```
"""

from __future__ import annotations

try:
    import nats  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("eventcore.nats needs nats-py: pip install 'eventcore-es[nats]'") from error

from eventcore.nats._connection import ensure_stream
from eventcore.nats._publisher import NatsPublisher
from eventcore.nats._source import NatsDelivery, NatsSource

__all__ = ["NatsDelivery", "NatsPublisher", "NatsSource", "ensure_stream"]
