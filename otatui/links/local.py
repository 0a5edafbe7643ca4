"""The `local` link: the device is this machine; install through the install hook.

Contract (DESIGN.md §3): the configured command runs with the working directory set to a fresh
folder holding the downloaded files, and the environment `OTATUI_VERSION`, `OTATUI_NAME`,
`OTATUI_TYPE`, `OTATUI_MANIFEST` (path of the manifest JSON; for a JSON-type manifest it holds the
inline payload too), `OTATUI_FILES` (newline-separated absolute paths). Each stdout line becomes an
install step; exit 0 is success; a non-zero exit or the timeout is a failure carrying the last
stderr line. The command runs in its own process group so a timeout or a cancel stops its
children too.

The result is the command's own exit: a background process it leaves running (a service it
restarted, say) is not waited for and is left alone, even if it still holds the output pipes.
Output is read until the command has exited and then for `_DRAIN_S` more; after that the pipes
are closed (a leftover process that writes to them gets EPIPE: such a service should send its
output elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from typing import Any, BinaryIO

from otatui.links.link import Finished, InstallEvent, InstallRequest, Step

_MAX_LINE = 500  # characters of one output line kept for a report
_KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
_DRAIN_S = 0.5  # output still read after the command exited (lines already in the pipes)
_LINE_LIMIT = 65536


class LocalLink:
    """Runs the install hook of the agent role."""

    source = "local"

    def __init__(self, command: Sequence[str], *, timeout: float = 600.0) -> None:
        if not command:
            raise ValueError("install_command is empty")
        self.command = list(command)
        self.timeout = timeout

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        manifest = request.manifest
        workdir = request.workdir
        for key, value in (("version", manifest.version), ("name", manifest.name)):
            if "\0" in value:  # the environment cannot hold it
                yield Finished(
                    False,
                    f"cannot run the install command: the manifest's {key} holds a NUL character",
                )
                return
        manifest_path = workdir.parent / f"{workdir.name}.manifest.json"
        manifest_path.write_text(manifest.raw, encoding="utf-8")
        env = dict(os.environ)
        env.update(
            OTATUI_VERSION=manifest.version,
            OTATUI_NAME=manifest.name,
            OTATUI_TYPE=str(manifest.type),
            OTATUI_MANIFEST=str(manifest_path),
            OTATUI_FILES="\n".join(str(p.resolve()) for p in request.files),
        )
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            for fd in (out_read, err_read):
                os.close(fd)
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            yield Finished(False, f"cannot start install command {self.command[0]!r}: {why}")
            return
        finally:
            os.close(out_write)  # the child has its copies: EOF comes when it closes them
            os.close(err_write)

        lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        stderr_tail: deque[str] = deque(maxlen=1)
        pipes = [os.fdopen(fd, "rb", 0) for fd in (out_read, err_read)]
        transports: list[asyncio.ReadTransport] = []
        streams: list[asyncio.StreamReader] = []
        try:
            for pipe in pipes:
                stream, transport = await _read_pipe(pipe)
                streams.append(stream)
                transports.append(transport)
        except BaseException:
            for pipe in pipes[len(transports) :]:
                pipe.close()
            for transport in transports:
                transport.close()
            await _stop(proc)
            raise

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while True:
                try:
                    raw = await stream.readline()
                except ValueError:  # a line longer than the stream limit: take what is there
                    raw = await stream.read(_LINE_LIMIT)
                if not raw:
                    break
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if text.strip():
                    text = text[:_MAX_LINE]
                    if name == "stderr":
                        stderr_tail.append(text)
                    await lines.put((name, text))
            await lines.put(None)

        pumps = [
            asyncio.create_task(pump(streams[0], "stdout")),
            asyncio.create_task(pump(streams[1], "stderr")),
        ]
        exited = asyncio.create_task(proc.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        drain_until: float | None = None  # set once the command exited
        open_streams = 2
        timed_out = False
        try:
            while open_streams:
                if drain_until is None and exited.done():
                    drain_until = loop.time() + _DRAIN_S
                limit = deadline if drain_until is None else min(deadline, drain_until)
                remaining = limit - loop.time()
                if remaining <= 0:
                    timed_out = drain_until is None or loop.time() >= deadline
                    break
                getter = asyncio.create_task(lines.get())
                waiting: set[asyncio.Future[Any]] = {getter}
                if drain_until is None:
                    waiting.add(exited)
                done, _ = await asyncio.wait(
                    waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    continue
                item = getter.result()
                if item is None:
                    open_streams -= 1
                    continue
                source, text = item
                if source == "stdout":
                    yield Step(text)
                else:
                    yield Step(text, stream="stderr")
            if not timed_out:
                try:
                    await asyncio.wait_for(asyncio.shield(exited), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    timed_out = True
            if timed_out:
                await _stop(proc)
                tail = f"; last output: {stderr_tail[-1]}" if stderr_tail else ""
                yield Finished(False, f"install timed out after {self.timeout:g} s{tail}")
                return
            code = proc.returncode
            if code == 0:
                yield Finished(True, "install command succeeded")
            else:
                why = stderr_tail[-1] if stderr_tail else _describe_exit(code)
                yield Finished(False, why)
        finally:
            if proc.returncode is None:
                await _stop(proc)
            for task in [*pumps, exited]:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pumps, exited, return_exceptions=True)
            for transport in transports:
                transport.close()
            with contextlib.suppress(OSError):
                manifest_path.unlink()


async def _read_pipe(pipe: BinaryIO) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """A stream over the read end of a pipe, and its transport (close it to close the pipe)."""
    stream = asyncio.StreamReader(limit=_LINE_LIMIT)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), pipe
    )
    return stream, transport


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"install command killed by {name}"
    return f"install command exited with code {code}"


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, wait a grace period, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
    await proc.wait()
