"""RabbitMQ for eventcore's outbox and consumers (`pip install 'eventcore-es[rabbitmq]'`).

[`RabbitMqPublisher`][eventcore.rabbitmq.RabbitMqPublisher] publishes an outbox relay's
messages to a topic exchange (routing key: the message's topic) with publisher
confirms; [`RabbitMqSource`][eventcore.rabbitmq.RabbitMqSource] consumes a durable
queue bound to it. Both use [aio-pika](https://aio-pika.readthedocs.io).

```python
from eventcore.rabbitmq import RabbitMqPublisher, RabbitMqSource, declare_queue

URL = "amqp://guest:guest@localhost:5672/"

# Declare the consumer's queue first: with mandatory=True (the default) a message
# no queue is bound for is reported as failed rather than dropped.
await declare_queue(URL, "billing", bindings=["enrolment.*"])

async with RabbitMqPublisher(URL) as publisher:
    failures = await publisher.publish(messages)  # {message_id: reason} of the failed

source = RabbitMqSource(URL, queue="billing", bindings=["enrolment.*"])
async with source.deliveries() as deliveries:
    async for delivery in deliveries:
        ...  # handle delivery.message
        await delivery.ack()
```
"""

from __future__ import annotations

try:
    import aio_pika  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "eventcore.rabbitmq needs aio-pika: pip install 'eventcore-es[rabbitmq]'"
    ) from error

from eventcore.rabbitmq._publisher import RabbitMqPublisher
from eventcore.rabbitmq._source import RabbitMqDelivery, RabbitMqSource
from eventcore.rabbitmq._topology import (
    DEFAULT_EXCHANGE,
    declare_queue,
    delete_exchange,
    delete_queue,
    purge_queue,
)

__all__ = [
    "DEFAULT_EXCHANGE",
    "RabbitMqDelivery",
    "RabbitMqPublisher",
    "RabbitMqSource",
    "declare_queue",
    "delete_exchange",
    "delete_queue",
    "purge_queue",
]
