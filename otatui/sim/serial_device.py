"""A simulated offline device on a serial link: the device side of docs/serial-link.md.

`SerialDevice(port, identity=..., installed_version=..., folder=...)` serves one BytePort until it
closes: it answers hello (with the files it holds), echoes each manifest, tests, asks for the
files it does not hold yet, receives them with YMODEM, checks size and sha256, "installs" them
and reports each status as an `otau_in` frame, following the otau contract. `fail="test"` makes
it refuse the update (TEST_ERROR), `fail="install"` fail the install (INSTALL_ERROR).
`drop_after=N` makes it vanish (close its port) once it has received N bytes, like a cable pulled
out. What it keeps in `folder`: `state.json` (the installed version, which wins over
`installed_version` on a restart), `held/` (verified files of an unfinished push, so a resumed push
skips them), `installed/` (the files of the last install). `trace(kind, text)` sees every frame
("recv"/"send") and transfer note ("ymodem") for a readable protocol trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from otatui.links import serial_frames as sf
from otatui.links import ymodem
from otatui.links.byte_port import BytePort, LinkError, PortClosed
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.status import Status
from otatui.sim.dropping_port import DroppingPort

Trace = Callable[[str, str], None]

MAX_FRAME = 16384  # what this device announces it can receive
FAIL_MODES = ("test", "install")


class _Cancelled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Restart(Exception):
    """The host said hello (or sent another manifest) in the middle of a push."""

    def __init__(self, manifest: sf.ManifestFrame | None = None) -> None:
        super().__init__("restart")
        self.manifest = manifest


class SerialDevice:
    """The device side of the serial protocol, for tests, the demo and firmware developers."""

    def __init__(
        self,
        port: BytePort,
        *,
        identity: str,
        installed_version: str,
        folder: Path,
        fail: str | None = None,
        drop_after: int | None = None,
        step_delay: float = 0.2,
        trace: Trace | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fail is not None and fail not in FAIL_MODES:
            raise ValueError(f"fail must be one of {', '.join(FAIL_MODES)}, not {fail!r}")
        self.port: BytePort = DroppingPort(port, drop_after) if drop_after is not None else port
        self.identity = identity
        self.folder = folder
        self.fail = fail
        self.step_delay = step_delay
        self.trace = trace or (lambda kind, text: None)
        self.clock = clock
        self.held_dir = folder / "held"
        self.incoming_dir = folder / "incoming"
        self.installed_dir = folder / "installed"
        for path in (self.held_dir, self.incoming_dir, self.installed_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.installed_version = self._load_version(installed_version)
        self.reports: list[sf.Report] = []  # everything reported, for tests
        self._current: sf.ManifestFrame | None = None

    @property
    def dropped(self) -> bool:
        return isinstance(self.port, DroppingPort) and self.port.dropped

    # -- state on disk --------------------------------------------------------------------------

    def _load_version(self, default: str) -> str:
        try:
            data = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return default
        version = data.get("installed_version") if isinstance(data, dict) else None
        return version if isinstance(version, str) and version else default

    def _save_version(self, version: str) -> None:
        self.installed_version = version
        path = self.folder / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"installed_version": version}), encoding="utf-8")
        os.replace(tmp, path)

    def held(self) -> list[sf.FileInfo]:
        """The verified files kept from an unfinished push."""
        result = []
        for path in sorted(self.held_dir.iterdir()):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result.append(sf.FileInfo(name=path.name, size=path.stat().st_size, sha256=digest))
        return result

    # -- serving --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the port closes (or the device drops the link)."""
        pending: sf.ManifestFrame | None = None
        try:
            while True:
                if pending is not None:
                    frame: sf.HostFrame | None = pending
                    pending = None
                else:
                    frame = await self._receive(3600.0)
                match frame:
                    case sf.ManifestFrame():
                        pending = await self._push_guarded(frame)
                    case None:
                        pass
                    case _:
                        await self._answer(frame)
        except (PortClosed, LinkError):
            pass
        finally:
            with contextlib.suppress(LinkError, OSError):
                await self.port.aclose()

    async def _answer(self, frame: sf.HostFrame) -> None:
        """What the device says to a frame outside a push (and to hello/ping inside one)."""
        match frame:
            case sf.HostHello():
                hello = sf.DeviceHello(
                    identity=self.identity,
                    version=self.installed_version,
                    files=tuple(await asyncio.to_thread(self.held)),
                    max_frame=MAX_FRAME,
                    time=round(self.clock(), 3),
                )
                await self._send(hello)
            case sf.Ping(seq=seq):
                await self._send(sf.Pong(seq=seq))
            case sf.Cancel():
                await self._send(sf.Cancelled(aborted=False, message="nothing to cancel"))
            case _:
                pass

    async def _receive(self, seconds: float) -> sf.HostFrame | None:
        """The next frame from the host (None at the timeout); bad frames get an error frame."""
        try:
            line = await self.port.readline(seconds, sf.MAX_FRAME)
        except PortClosed:
            raise
        except LinkError as exc:  # a line longer than any frame: drop it, say so, go on
            self.port.discard_input()
            await self._send(sf.ErrorFrame(message=str(exc)))
            return None
        if line is None:
            return None
        text = sf.frame_text(line)
        if text is None:
            self.trace("note", f"ignored a line that is not a frame: {line[:60]!r}")
            return None
        self.trace("recv", text.decode("utf-8", "replace"))
        try:
            frame = sf.decode_from_host(text)
        except sf.FrameError as exc:
            await self._send(sf.ErrorFrame(message=str(exc)))
            return None
        if isinstance(frame, sf.UnknownFrame):
            await self._send(sf.ErrorFrame(message=f"unknown frame type {frame.type!r}"))
            return None
        return frame

    async def _send(self, frame: sf.DeviceFrame) -> None:
        line = sf.encode(frame)
        self.trace("send", line.decode("utf-8").rstrip("\n"))
        await self.port.write(line)

    async def _wait(self, seconds: float) -> None:
        """Let `seconds` pass while serving the host: pong, echo again, cancel, hello."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            frame = await self._receive(remaining)
            match frame:
                case None:
                    continue
                case sf.Cancel(reason=reason):
                    raise _Cancelled(reason or "cancelled by the host")
                case sf.HostHello():
                    await self._answer(frame)
                    raise _Restart()
                case sf.ManifestFrame() if frame == self._current:
                    await self._send(sf.Echo(manifest=frame.manifest))
                case sf.ManifestFrame():
                    raise _Restart(frame)
                case _:
                    await self._answer(frame)

    async def _report(self, version: str, status: Status, message: str = "") -> None:
        report = sf.Report(
            version=version, status=status, message=message, time=round(self.clock(), 3)
        )
        self.reports.append(report)
        await self._send(report)
        if not status.is_final:
            await self._wait(self.step_delay)

    # -- one push -------------------------------------------------------------------------------

    async def _push_guarded(self, frame: sf.ManifestFrame) -> sf.ManifestFrame | None:
        """Run a push; returns a newer manifest that interrupted it, if any."""
        self._current = frame
        try:
            await self._push(frame)
        except _Cancelled as cancel:
            await self._report(version_of(frame), Status.INSTALL_ABORTED, cancel.reason)
            await self._send(sf.Cancelled(aborted=True, message="stopped before installing"))
        except _Restart as restart:
            return restart.manifest
        finally:
            self._current = None
            shutil.rmtree(self.incoming_dir, ignore_errors=True)
            self.incoming_dir.mkdir(parents=True, exist_ok=True)
        return None

    async def _push(self, frame: sf.ManifestFrame) -> str:
        await self._send(sf.Echo(manifest=frame.manifest))
        parsed = parse_manifest(frame.manifest)
        if not isinstance(parsed, Manifest):
            await self._report(parsed.version or "unknown", Status.TEST_ERROR, parsed.reason)
            return parsed.version or "unknown"
        version = parsed.version
        if version == self.installed_version:
            await self._report(version, Status.INSTALLED_VERSION, "already installed")
            return version
        await self._report(version, Status.INIT)
        await self._report(version, Status.TEST)
        needed = sum(f.size for f in frame.files)
        await self._report(version, Status.TEST_STEP, f"{needed} bytes needed")
        problem = self._test(parsed, frame)
        if problem:
            await self._report(version, Status.TEST_ERROR, problem)
            return version
        await self._report(version, Status.TEST_SUCCESS)
        if not await self._download(version, frame):
            return version
        await self._report(version, Status.INSTALL)
        for info in frame.files:
            await self._report(version, Status.INSTALL_STEP, f"writing {info.name}")
        if self.fail == "install":
            await self._report(
                version, Status.INSTALL_ERROR, "simulated install failure: flash verify failed"
            )
            return version
        await asyncio.to_thread(self._install, version)
        await self._report(version, Status.INSTALL_SUCCESS)
        await self._report(version, Status.INSTALLED_VERSION)
        return version

    def _test(self, manifest: Manifest, frame: sf.ManifestFrame) -> str:
        if self.fail == "test":
            return "simulated test failure: the update does not fit this hardware"
        if manifest.needs_download and len(frame.files) != len(manifest.items):
            return f"the manifest has {len(manifest.items)} files but {len(frame.files)} came"
        return ""

    async def _download(self, version: str, frame: sf.ManifestFrame) -> bool:
        """Receive what is not held yet and verify everything; False after DOWNLOAD_ERROR."""
        held = set(await asyncio.to_thread(self.held))
        wanted = set(frame.files)
        for info in held - wanted:  # a held file this manifest does not use
            (self.held_dir / info.name).unlink(missing_ok=True)
        missing = [f for f in frame.files if f not in held]
        await self._report(version, Status.DOWNLOAD, f"{len(missing)} file(s) to receive")
        await self._send(sf.Send(files=tuple(f.name for f in missing)))
        if missing:
            try:
                await ymodem.receive(
                    self.port,
                    self.incoming_dir,
                    on_progress=self._progress,
                    timeout=5.0,
                    retries=6,
                    start_timeout=10.0,
                    max_size=max(f.size for f in missing),
                    peer="the host",
                )
            except ymodem.YmodemError as exc:
                self.trace("ymodem", f"batch failed: {exc}")
                await self._wait(1.5)  # a host that cancelled says so within 0.5 s
                await self._report(version, Status.DOWNLOAD_ERROR, f"transfer failed: {exc}")
                return False
            finally:  # also when the link drops: complete files are kept for a resume
                # (synchronous: a cancelled device must not lose them to a half-done move)
                problems = self._sort_incoming(missing)
        else:
            problems = {}
        now_held = set(await asyncio.to_thread(self.held))
        for info in frame.files:
            if info not in now_held:
                problem = problems.get(info.name, f"{info.name}: not received")
                await self._report(version, Status.DOWNLOAD_ERROR, problem)
                return False
            note = "already held" if info in held else f"{info.size} bytes, sha256 ok"
            await self._report(version, Status.DOWNLOAD_STEP, f"{info.name}: {note}")
        await self._report(version, Status.DOWNLOAD_SUCCESS)
        return True

    def _sort_incoming(self, expected: list[sf.FileInfo]) -> dict[str, str]:
        """Move each complete, verified received file to held/; the problems of the others."""
        problems = {}
        for info in expected:
            path = self.incoming_dir / info.name
            if not path.is_file():
                continue
            data = path.read_bytes()
            if len(data) != info.size:
                problems[info.name] = (
                    f"{info.name}: {len(data)} bytes received, {info.size} expected"
                )
            elif hashlib.sha256(data).hexdigest() != info.sha256:
                problems[info.name] = f"{info.name}: sha256 mismatch"
            else:
                os.replace(path, self.held_dir / info.name)
                continue
            path.unlink(missing_ok=True)
        return problems

    def _install(self, version: str) -> None:
        shutil.rmtree(self.installed_dir, ignore_errors=True)
        self.held_dir.rename(self.installed_dir)
        self.held_dir.mkdir()
        self._save_version(version)

    def _progress(self, p: ymodem.FileProgress) -> None:
        if p.done == 0:
            self.trace("ymodem", f"receiving {p.name} ({p.total} bytes)")
        elif p.done >= p.total:
            self.trace("ymodem", f"received {p.name} ({p.done} bytes)")


def version_of(frame: sf.ManifestFrame) -> str:
    """The manifest's version as well as it can be read (for an abort report)."""
    parsed = parse_manifest(frame.manifest)
    return parsed.version or "unknown"
