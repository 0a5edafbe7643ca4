"""One push over the serial link (docs/serial-link.md): what `SerialLink.install()` runs.

`Push.run()` opens the port, says hello (identity check), sends the manifest and waits for its
echo, then follows the device's frames: its reports (`DeviceReport`, with the frame's `time`),
its `send` request (the files go as a YMODEM batch, `Pushed` progress), `log`/`busy`, with pings
after silence, until a final report. It emits exactly one `Finished`, then `None`. Cancelled, it
aborts (CAN CAN from the YMODEM sender, the `cancel` frame, a short wait for `cancelled`) and
closes the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from otatui import __version__
from otatui.links import serial_frames as sf
from otatui.links import ymodem
from otatui.links.byte_port import BytePort, LinkError, PortClosed
from otatui.links.file_digest import file_digest
from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallEvent,
    InstallRequest,
    LinkStatus,
    Pushed,
    Step,
)
from otatui.links.serial_timeouts import SerialTimeouts
from otatui.otau.status import Status

log = logging.getLogger(__name__)

OpenPort = Callable[[str, int], Awaitable[BytePort]]

_PROGRESS_EVERY = 0.1  # seconds between two Pushed events of one file
_AFTER_CAN = 0.5  # seconds between aborting a batch and sending the cancel frame
_INSTALLING = frozenset(
    {Status.INSTALL, Status.INSTALL_STEP, Status.INSTALL_SUCCESS, Status.INSTALLED_VERSION}
)


class PortSettings(Protocol):
    """What a push needs to know of its link."""

    @property
    def port(self) -> str: ...
    @property
    def baud(self) -> int: ...
    @property
    def identity(self) -> str: ...
    @property
    def open_port(self) -> OpenPort: ...
    @property
    def timeouts(self) -> SerialTimeouts: ...


class _Ended(Exception):
    """The push ends with this one-line message; `lost` when the device stopped answering."""

    def __init__(self, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    info: sf.FileInfo
    index: int


def _describe(paths: Sequence[Path]) -> list[sf.FileInfo]:
    """Name, size and sha256 of each payload file (run in a thread)."""
    infos = []
    for path in paths:
        sha256, size = file_digest(path)
        infos.append(sf.FileInfo(name=path.name, size=size, sha256=sha256))
    return infos


class Push:
    """One push; `run()` emits the events and exactly one Finished, then None."""

    def __init__(
        self,
        link: PortSettings,
        request: InstallRequest,
        emit: Callable[[InstallEvent | None], None],
    ) -> None:
        self.link = link
        self.t = link.timeouts
        self.path = link.port
        self.request = request
        self.version = request.manifest.version
        self.emit = emit
        self.port: BytePort | None = None
        self.files: list[_File] = []
        self.max_frame = sf.MAX_FRAME
        self.manifest_sent = False
        self.in_batch = False  # the line is in YMODEM mode
        self.installing = False
        self.ignored = 0  # lines that were not frames
        self.last_ignored = ""
        self.seq = 0
        now = time.monotonic()
        self.last_rx = now
        self.last_ping = now
        self.silent_until = now + self.t.silence
        self.phase = "while waiting for the device"

    async def run(self) -> None:
        try:
            ok, message = await self._push()
            await self._close()
            self.emit(LinkStatus("closed", message))
            self.emit(Finished(ok, message))
        except _Ended as end:
            await self._close()
            self.emit(LinkStatus("lost" if end.lost else "closed", str(end)))
            self.emit(Finished(False, str(end)))
        except asyncio.CancelledError:
            await self._abort()
            raise
        except Exception as exc:  # a bug must still end the push with one clear line
            log.exception("serial push on %s failed unexpectedly", self.path)
            await self._close()
            message = f"serial link on {self.path} failed: {type(exc).__name__}: {exc}"
            self.emit(LinkStatus("closed", message))
            self.emit(Finished(False, message))
        finally:
            self.emit(None)

    # -- the steps ----------------------------------------------------------------------------

    async def _push(self) -> tuple[bool, str]:
        self.emit(LinkStatus("opening", f"opening {self.path} at {self.link.baud} baud"))
        try:
            infos = await asyncio.to_thread(_describe, self.request.files)
        except OSError as exc:
            raise _Ended(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
        pairs = zip(self.request.files, infos, strict=True)
        self.files = [_File(path, info, n) for n, (path, info) in enumerate(pairs)]
        try:
            self.port = await asyncio.wait_for(
                self.link.open_port(self.path, self.link.baud), self.t.open
            )
        except LinkError as exc:
            raise _Ended(str(exc)) from None
        except TimeoutError:
            raise _Ended(f"cannot open {self.path}: no answer in {self.t.open:g} s") from None
        try:
            return await self._talk()
        except PortClosed:
            raise _Ended(
                f"the device on {self.path} went away {self.phase} (the port closed)", lost=True
            ) from None
        except LinkError as exc:
            raise _Ended(str(exc), lost=True) from None

    async def _talk(self) -> tuple[bool, str]:
        port = self.port
        assert port is not None
        port.discard_input()
        self.emit(LinkStatus("waiting", f"waiting for the device on {self.path} to say hello"))
        hello = await self._hello()
        if hello.protocol != sf.PROTOCOL:
            raise _Ended(
                f"the device on {self.path} speaks serial protocol {hello.protocol}; "
                f"this otatui speaks {sf.PROTOCOL}"
            )
        if hello.identity != self.link.identity:
            raise _Ended(
                f"the device on {self.path} says it is {hello.identity}, "
                f"expected {self.link.identity}"
            )
        self.max_frame = hello.max_frame or sf.MAX_FRAME
        held = {f.info for f in self.files} & set(hello.files)
        detail = f"{hello.identity} runs {hello.version}"
        if held:
            detail += f", already holds {len(held)} of {len(self.files)} files"
        self.emit(LinkStatus("connected", detail))
        await self._send_manifest()
        self.phase = "while testing the update"
        return await self._follow()

    async def _hello(self) -> sf.DeviceHello:
        hello = sf.encode(sf.HostHello(host=f"otatui {__version__}"))
        for _ in range(self.t.hello_attempts):
            await self._write(hello)
            deadline = time.monotonic() + self.t.hello
            while (frame := await self._frame(deadline)) is not None:
                if isinstance(frame, sf.DeviceHello):
                    return frame
        waited = f"{self.t.hello * self.t.hello_attempts:g} s"
        if self.ignored:
            raise _Ended(
                f"the device on {self.path} sends text but no hello frame in {waited} "
                f"(last line: {self.last_ignored}); does it speak the otatui serial protocol?",
                lost=True,
            )
        raise _Ended(f"no device answers on {self.path} (no hello in {waited})", lost=True)

    async def _send_manifest(self) -> None:
        manifest = self.request.manifest.raw
        frame = sf.ManifestFrame(manifest=manifest, files=tuple(f.info for f in self.files))
        try:
            line = sf.encode(frame, limit=self.max_frame)
        except sf.FrameError as exc:
            raise _Ended(f"the manifest does not fit the device on {self.path}: {exc}") from None
        for _ in range(self.t.manifest_attempts):
            await self._write(line)
            self.manifest_sent = True
            deadline = time.monotonic() + self.t.echo
            while (reply := await self._frame(deadline)) is not None:
                if isinstance(reply, sf.Echo):
                    if reply.manifest != manifest:
                        raise _Ended(f"the device on {self.path} echoed a different manifest")
                    return
                if isinstance(reply, sf.ErrorFrame):
                    raise _Ended(f"the device refused the manifest frame: {reply.message}")
        raise _Ended(
            f"the device on {self.path} did not acknowledge the manifest "
            f"(no echo after {self.t.manifest_attempts} sends, {self.t.echo:g} s each)",
            lost=True,
        )

    async def _follow(self) -> tuple[bool, str]:
        """Frame mode until a final report: pings, reports, the YMODEM batch."""
        push_deadline = time.monotonic() + self.t.push
        while True:
            now = time.monotonic()
            if now >= self.silent_until:
                quiet = now - self.last_rx
                raise _Ended(
                    f"the device on {self.path} stopped answering "
                    f"(nothing for {quiet:.0f} s {self.phase})",
                    lost=True,
                )
            if now >= push_deadline:
                raise _Ended(f"the push to {self.path} took longer than {self.t.push:g} s")
            next_ping = max(self.last_rx, self.last_ping) + self.t.ping_after
            if now >= next_ping:
                self.seq += 1
                self.last_ping = now
                await self._write(sf.encode(sf.Ping(seq=self.seq)))
                continue
            frame = await self._frame(min(next_ping, self.silent_until, push_deadline))
            if frame is None:
                continue
            result = await self._handle(frame)
            if result is not None:
                return result

    async def _handle(self, frame: sf.DeviceFrame | sf.UnknownFrame) -> tuple[bool, str] | None:
        match frame:
            case sf.Report(version=version, status=status, message=message):
                return self._report(frame, version, status, message)
            case sf.Send(files=names):
                await self._transfer(names)
            case sf.Log(message=message):
                self.emit(Step(message, stream="device"))
            case sf.Busy(seconds=seconds, message=message):
                self.silent_until = time.monotonic() + seconds + self.t.silence
                if message:
                    self.emit(Step(message, stream="device"))
            case sf.DeviceHello(version=version):
                if version == self.version:
                    return True, f"the device restarted and runs {version}"
                return False, f"the device restarted during the push and runs {version}"
            case sf.ErrorFrame(message=message):
                return False, f"the device did not understand a frame: {message}"
            case _:  # pong, a repeated echo, an unexpected cancelled, an unknown type
                pass
        return None

    def _report(
        self, frame: sf.Report, version: str, status: Status, message: str
    ) -> tuple[bool, str] | None:
        if version != self.version:
            if status is Status.INSTALLED_VERSION:
                return False, f"the device reports it runs {version}, not {self.version}"
            return None  # a leftover report of an earlier manifest
        if status in _INSTALLING and not self.installing:
            self.installing = True
            self.phase = "while installing"
            self.emit(LinkStatus("installing", f"the device installs {version}"))
        self.emit(DeviceReport(frame.report, time=frame.time))
        if status.is_error:
            return False, message or f"the device reported {status.value}"
        if status is Status.INSTALLED_VERSION:
            return True, message or f"the device runs {version}"
        return None

    async def _transfer(self, names: tuple[str, ...]) -> None:
        port = self.port
        assert port is not None
        by_name = {f.info.name: f for f in self.files}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise _Ended(f"the device asked for {unknown[0]!r}, which is not in the manifest")
        for f in self.files:  # what the device holds already counts as pushed
            if f.info.name not in names:
                size = f.info.size
                self.emit(Pushed(f.info.name, f.index, len(self.files), size, size))
        if not names:
            return
        wanted = [by_name[n] for n in names]
        self.emit(LinkStatus("transferring", f"sending {len(wanted)} file(s) with YMODEM"))
        self.phase = "during the transfer"
        last: dict[str, float] = {}

        def progress(p: ymodem.FileProgress) -> None:
            self.phase = f"during the transfer of {p.name}"
            now = time.monotonic()
            if p.done < p.total and now - last.get(p.name, 0.0) < _PROGRESS_EVERY:
                return
            last[p.name] = now
            f = by_name.get(p.name)
            index = f.index if f else p.index
            self.emit(Pushed(p.name, index, len(self.files), p.done, p.total))

        self.in_batch = True
        try:
            await ymodem.send(
                port,
                [(f.info.name, f.path) for f in wanted],
                on_progress=progress,
                timeout=self.t.ymodem_block,
                retries=self.t.ymodem_retries,
                start_timeout=self.t.ymodem_start,
            )
        except ymodem.YmodemError as exc:
            self.in_batch = False
            await self._after_failed_batch(str(exc))
        self.in_batch = False
        self.last_rx = time.monotonic()
        self.silent_until = self.last_rx + self.t.silence
        self.phase = "while the device checks the files"
        self.emit(LinkStatus("connected", "files sent; the device checks them"))

    async def _after_failed_batch(self, why: str) -> None:
        """A device that aborted the batch itself reports why; one that vanished does not."""
        deadline = time.monotonic() + self.t.echo
        while (frame := await self._frame(deadline)) is not None:
            if isinstance(frame, sf.Report) and frame.version == self.version:
                self.emit(DeviceReport(frame.report, time=frame.time))
                if frame.status.is_error:
                    raise _Ended(frame.message or f"the device reported {frame.status.value}")
        raise _Ended(f"the transfer to {self.path} failed: {why}", lost=True)

    # -- frames -------------------------------------------------------------------------------

    async def _frame(self, deadline: float) -> sf.DeviceFrame | sf.UnknownFrame | None:
        """The next valid frame from the device, or None at `deadline` (monotonic)."""
        port = self.port
        assert port is not None
        while (remaining := deadline - time.monotonic()) > 0:
            line = await port.readline(remaining, sf.MAX_FRAME)
            if line is None:
                return None
            text = sf.frame_text(line)
            try:
                if text is None:
                    raise sf.FrameError("not a frame")
                frame = sf.decode_from_device(text)
            except sf.FrameError:
                self.ignored += 1
                shown = line.decode("utf-8", "replace").strip()
                self.last_ignored = repr(shown[:60])
                continue
            self.last_rx = time.monotonic()
            self.silent_until = max(self.silent_until, self.last_rx + self.t.silence)
            return frame
        return None

    async def _write(self, line: bytes) -> None:
        """Send a frame; a device that stops reading (a pty's buffer stays full) ends the push
        after the silence timeout instead of holding it forever."""
        port = self.port
        assert port is not None
        try:
            async with asyncio.timeout(self.t.silence):
                await port.write(line)
        except TimeoutError:
            raise _Ended(
                f"the device on {self.path} stopped reading "
                f"(a frame waited {self.t.silence:g} s to be sent {self.phase})",
                lost=True,
            ) from None

    # -- ending -------------------------------------------------------------------------------

    async def _abort(self) -> None:
        """Cancelled: tell the device (it may confirm), then close the port."""
        port = self.port
        if port is not None and self.manifest_sent:
            with contextlib.suppress(LinkError, sf.FrameError, TimeoutError):
                if self.in_batch:  # the sender sent CAN CAN: let the receiver leave YMODEM
                    await asyncio.sleep(_AFTER_CAN)
                    port.discard_input()
                deadline = time.monotonic() + self.t.cancel
                async with asyncio.timeout(self.t.cancel):  # a device that stopped reading
                    await port.write(sf.encode(sf.Cancel(reason="cancelled by the technician")))
                while (frame := await self._frame(deadline)) is not None:
                    if isinstance(frame, sf.Cancelled):
                        break
        await self._close()

    async def _close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            with contextlib.suppress(LinkError, OSError):
                await port.aclose()
