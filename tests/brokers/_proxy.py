"""A TCP proxy the broker tests cut, to drop a client's connection as a network would."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards 127.0.0.1:`port` to the host and port of `url`.

    `cut()` drops the open connections; `pause()` also stops accepting new ones (the
    broker looks down) until `resume()`; `freeze()` holds the bytes in flight both ways
    (a stalled network) until `thaw()`.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self._url = parts
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    @property
    def url(self) -> str:
        """`url` with its host and port replaced by the proxy's."""
        netloc = self._url.netloc.rsplit("@", 1)
        address = f"127.0.0.1:{self.port}"
        netloc[-1] = address
        return urlunsplit(self._url._replace(netloc="@".join(netloc)))

    async def resume(self) -> None:
        """Accept connections (on the same port as before, if any)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def pause(self) -> None:
        """Stop accepting connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.cut()

    async def cut(self) -> None:
        """Drop every open connection (both sides see a reset); thaws the proxy."""
        for writer in list(self._writers):
            writer.transport.abort()
        self.thaw()
        if self._tasks:  # the pipes end once their transports are aborted
            await asyncio.wait(list(self._tasks), timeout=5)

    def freeze(self) -> None:
        """Stop forwarding bytes (the connections stay open)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward bytes again."""
        self._flowing.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writers = [writer]
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            writers.append(up_writer)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            for w in writers:
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def __aenter__(self) -> TcpProxy:
        await self.resume()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.pause()
