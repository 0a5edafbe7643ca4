"""`otatui run --headless` as a real process for the functional tests, and a slow HTTP file
server to kill it in the middle of a download.

- `Otatui(config, env)`: `start()`, the JSON lines it prints collected in `events` (and its
  stderr in `stderr`, read as it comes so that a chatty log never blocks the process),
  `wait_for(predicate)`, `stop(signal)` (SIGKILL after 20 s).
- `slow_server(data)`: serves `data` at about 6 MiB/s, honouring `Range: bytes=N-`, recording the
  ranges and headers it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wait_helpers import eventually

OTATUI = str(Path(sys.executable).with_name("otatui"))


class _SlowRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file slowly, honouring `Range: bytes=N-`, recording each Range asked for."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        data: bytes = server.data  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        server.ranges.append(rng)  # type: ignore[attr-defined]
        server.headers_seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"big-v1"')
        self.end_headers()
        chunk = 64 * 1024
        try:
            for offset in range(start, len(data), chunk):
                self.wfile.write(data[offset : offset + chunk])
                threading.Event().wait(0.01)  # about 6 MiB/s
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextlib.contextmanager
def slow_server(data: bytes) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowRangeHandler)
    server.data = data  # type: ignore[attr-defined]
    server.ranges = []  # type: ignore[attr-defined]
    server.headers_seen = []  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Otatui:
    """One `otatui run --headless` process; its JSON lines are collected as they arrive."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, env
        self.events: list[dict[str, Any]] = []
        self.stderr = bytearray()
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            OTATUI, "--config", str(self.config), "run", "--headless",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        self._readers = [
            asyncio.create_task(self._read_events()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_events(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.events.append(json.loads(line))

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(1 << 16):
            self.stderr += chunk

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        """The first event `predicate` accepts; AssertionError if otatui exits first."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self.events if predicate(e)][:1]
            if found:
                return True
            assert self.proc is not None
            if self.proc.returncode is not None:
                err = self.stderr.decode(errors="replace")[-2000:]
                raise AssertionError(f"otatui exited {self.proc.returncode}: {err}")
            return False

        await eventually(seen, timeout, "an otatui event that matches")
        return found[0]

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit code (SIGKILL, and AssertionError, after 20 s)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"otatui did not exit within 20 s of signal {sig}") from None
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._readers), 5)
        return code
