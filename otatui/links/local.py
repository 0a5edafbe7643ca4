"""The `local` link: the device is this machine; install through the install hook.

Contract (DESIGN.md §3): the configured command runs with the working directory set to a fresh
folder holding the downloaded files, and the environment `OTATUI_VERSION`, `OTATUI_NAME`,
`OTATUI_TYPE`, `OTATUI_MANIFEST` (path of the manifest JSON; for a JSON-type manifest it holds the
inline payload too), `OTATUI_FILES` (newline-separated absolute paths). Each stdout line becomes an
install step; exit 0 is success; a non-zero exit or the timeout is a failure carrying the last
stderr line. The command runs in its own process group so a timeout or a cancel stops its
children too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import AsyncGenerator, Sequence

from otatui.links.link import Finished, InstallEvent, InstallRequest, Step

_MAX_LINE = 500  # characters of one output line kept for a report
_KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL


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
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            yield Finished(
                False, f"cannot start install command {self.command[0]!r}: {exc.strerror}"
            )
            return

        assert proc.stdout is not None and proc.stderr is not None
        lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        stderr_tail: deque[str] = deque(maxlen=1)

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while True:
                try:
                    raw = await stream.readline()
                except ValueError:  # a line longer than the stream limit: take what is there
                    raw = await stream.read(65536)
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
            asyncio.create_task(pump(proc.stdout, "stdout")),
            asyncio.create_task(pump(proc.stderr, "stderr")),
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        open_streams = 2
        timed_out = False
        try:
            while open_streams:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    timed_out = True
                    break
                try:
                    item = await asyncio.wait_for(lines.get(), remaining)
                except TimeoutError:
                    timed_out = True
                    break
                if item is None:
                    open_streams -= 1
                    continue
                stream, text = item
                if stream == "stdout":
                    yield Step(text)
                else:
                    yield Step(text, stream="stderr")
            if not timed_out:
                try:
                    await asyncio.wait_for(proc.wait(), max(0.0, deadline - loop.time()))
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
            for task in pumps:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pumps, return_exceptions=True)
            with contextlib.suppress(OSError):
                manifest_path.unlink()


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
