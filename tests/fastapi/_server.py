"""The test service under a real uvicorn on a loopback port (run by the uvicorn tests).

```
python -m tests.fastapi._server sqlite PATH PORT
python -m tests.fastapi._server postgres URL SCHEMA PORT
```
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from eventcore import EventStoreTables, SqlAlchemyEventStore, postgres_engine, sqlite_engine
from tests.fastapi._app import build_app


def main(argv: list[str]) -> None:
    """Serve until SIGTERM or SIGINT."""
    if argv[0] == "sqlite":
        store = SqlAlchemyEventStore(sqlite_engine(argv[1]))
        port = int(argv[2])
    else:
        engine = postgres_engine(argv[1], pool_size=10)
        store = SqlAlchemyEventStore(engine, tables=EventStoreTables(schema=argv[2]))
        port = int(argv[3])
    app, _, _ = build_app(store, grace_period=5.0)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main(sys.argv[1:])
