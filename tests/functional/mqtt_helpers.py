"""Helpers for MQTT channel tests: waiting for a link state, and a TCP relay that counts
connections, can stop forwarding the device's bytes and can cut every connection."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from pathlib import Path

from connector_helpers import self_signed

from otatui.murano.channel import Channel, ChannelState, LinkState


async def wait_state(channel: Channel, *states: LinkState, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while channel.state.state not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {channel.state} after {within} s, wanted {states}")
        await asyncio.sleep(0.01)


class StateLog:
    """An `on_state` callback that keeps every state, so short-lived ones are not missed."""

    def __init__(self) -> None:
        self.states: list[ChannelState] = []
        self._changed = asyncio.Event()

    def __call__(self, state: ChannelState) -> None:
        self.states.append(state)
        self._changed.set()

    async def reach(self, *states: LinkState, after: int = 0, within: float = 10.0) -> int:
        """Index of the first of `states` recorded at or after index `after`."""
        async with asyncio.timeout(within):
            while True:
                for i in range(after, len(self.states)):
                    if self.states[i].state in states:
                        return i
                self._changed.clear()
                await self._changed.wait()


class Relay:
    """127.0.0.1:<port> → 127.0.0.1:<target>, byte for byte, counting accepted connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self.hold_upstream = False  # when set, bytes from the device are swallowed
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        """Close every relayed connection at once (no DISCONNECT, like a dropped network)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, upstream=True),
                self._pipe(up_reader, writer, upstream=False),
            )
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if upstream and self.hold_upstream:
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


def make_client_cert(directory: Path, identity: str) -> tuple[Path, Path]:
    """A self-signed client certificate whose CN is the device identity (Murano cert mode)."""
    return self_signed(directory, identity, stem=identity)


class CertServer:
    """A TLS listener that requires a client certificate, records the peer certificate and the
    CONNECT packet, and answers CONNACK 0 (what Murano does for a whitelisted certificate CN)."""

    def __init__(self, server_cert: Path, server_key: Path, client_ca: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server_cert, server_key)
        self.context.load_verify_locations(client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.peer_cn: str | None = None
        self.connect_packet = b""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> CertServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        peer = writer.get_extra_info("peercert") or {}
        for rdn in peer.get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    self.peer_cn = value
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            header = await reader.readexactly(2)  # CONNECT, remaining length (< 128 here)
            self.connect_packet = header + await reader.readexactly(header[1])
            writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
            await writer.drain()
            while await reader.read(4096):
                pass
