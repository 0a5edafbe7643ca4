"""SerialLink against scripted devices over in-memory ports: the protocol's corner cases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from otatui.links.byte_port import BytePort, PortClosed, memory_pair
from otatui.links.link import (
    DeviceReport,
    Finished,
    InstallEvent,
    InstallRequest,
    LinkStatus,
    Pushed,
    Step,
)
from otatui.links.serial import SerialLink, SerialTimeouts
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.sim.pass_through_port import PassThroughPort

T = SerialTimeouts(
    hello=0.2,
    hello_attempts=2,
    echo=0.3,
    manifest_attempts=2,
    ping_after=0.2,
    silence=0.8,
    ymodem_start=0.5,
    ymodem_block=0.3,
    ymodem_retries=2,
    cancel=0.5,
    push=10.0,
)
RAW = '{"version":"2.0.0","name":"fw","type":"URL_LIST","payload":["a.bin"]}'
HELLO = {"type": "hello", "protocol": 1, "identity": "s1", "version": "1.0.0", "files": []}

Script = Callable[["Device"], Awaitable[None]]


class Device:
    """The far end of a memory port, driven by a test's script."""

    def __init__(self, port: BytePort) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []

    async def frame(self, timeout: float = 3.0) -> dict[str, Any]:
        line = await self.port.readline(timeout)
        assert line is not None, "the host sent nothing"
        data: dict[str, Any] = json.loads(line)
        self.received.append(data)
        return data

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            data = await self.frame()
            if data["type"] == kind:
                return data

    async def say(self, **data: Any) -> None:
        await self.port.write(json.dumps(data).encode() + b"\n")

    async def report(self, status: str, message: str = "", version: str = "2.0.0") -> None:
        await self.say(type="otau_in", version=version, status=status, message=message)

    async def greet(self, **hello: Any) -> dict[str, Any]:
        """Answer hello, echo the manifest; returns the manifest frame."""
        await self.expect("hello")
        await self.say(**{**HELLO, **hello})
        manifest = await self.expect("manifest")
        await self.say(type="echo", manifest=manifest["manifest"])
        return manifest


def request(tmp: Path) -> InstallRequest:
    parsed = parse_manifest(RAW)
    assert isinstance(parsed, Manifest)
    (tmp / "a.bin").write_bytes(b"abc")
    return InstallRequest(manifest=parsed, files=(tmp / "a.bin",), workdir=tmp)


async def push(tmp: Path, script: Script, **link: Any) -> tuple[list[InstallEvent], Device]:
    host, far = memory_pair(("host port", "device port"))
    device = Device(far)

    async def open_port(path: str, baud: int) -> BytePort:
        return host

    serial = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T, **link)
    task = asyncio.create_task(script(device))
    events: list[InstallEvent] = []
    try:
        async with contextlib.aclosing(serial.install(request(tmp))) as stream:
            async for event in stream:
                events.append(event)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ends = [e for e in events if isinstance(e, Finished)]
    assert len(ends) == 1 and events[-1] is ends[0], events
    return events, device


def end(events: list[InstallEvent]) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished)
    return last


async def test_a_device_that_already_holds_the_files_gets_no_batch(tmp_path: Path) -> None:
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    held = [{"name": "a.bin", "size": 3, "sha256": sha}]

    async def script(d: Device) -> None:
        manifest = await d.greet(files=held)
        assert manifest["files"] == held
        await d.report("DOWNLOAD")
        await d.say(type="send", files=[])
        await d.say(type="log", message="using the held a.bin")
        await d.report("INSTALL")
        await d.report("INSTALLED_VERSION")

    events, _ = await push(tmp_path, script)
    assert end(events).ok
    assert [e for e in events if isinstance(e, Pushed)] == [Pushed("a.bin", 0, 1, 3, 3)]
    assert Step("using the held a.bin", stream="device") in events
    statuses = [e.state for e in events if isinstance(e, LinkStatus)]
    assert statuses == ["opening", "waiting", "connected", "installing", "closed"]
    connected = [e.detail for e in events if isinstance(e, LinkStatus)][2]
    assert connected == "s1 runs 1.0.0, already holds 1 of 1 files"


async def test_garbage_and_stale_frames_before_hello_are_skipped(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.expect("hello")
        await d.port.write(b"boot v1.0 ok\r\n")
        await d.say(type="pong", seq=4)
        await d.port.write(b'C{"type":"hello","protocol":1,"identity":"s1","version":"1.0.0"}\r\n')
        manifest = await d.expect("manifest")
        await d.say(type="echo", manifest=manifest["manifest"])
        await d.report("INSTALLED_VERSION")

    events, _ = await push(tmp_path, script)
    assert end(events).ok


async def test_a_device_that_only_prints_text_is_described(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        while True:
            await d.port.readline(5)
            await d.port.write(b"AT+OK\r\n")

    events, _ = await push(tmp_path, script)
    assert end(events).message == (
        "the device on /dev/ttyTEST sends text but no hello frame in 0.4 s "
        "(last line: 'AT+OK'); does it speak the otatui serial protocol?"
    )


async def test_another_protocol_version_is_refused(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.expect("hello")
        await d.say(**{**HELLO, "protocol": 2})
        await asyncio.sleep(5)

    events, device = await push(tmp_path, script)
    assert end(events).message == (
        "the device on /dev/ttyTEST speaks serial protocol 2; this otatui speaks 1"
    )
    assert [f["type"] for f in device.received] == ["hello"]


async def test_a_different_echo_fails_the_push(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.expect("hello")
        await d.say(**HELLO)
        await d.expect("manifest")
        await d.say(type="echo", manifest=RAW.replace("2.0.0", "2.0.1"))
        await asyncio.sleep(5)

    events, _ = await push(tmp_path, script)
    assert end(events).message == "the device on /dev/ttyTEST echoed a different manifest"


async def test_a_missing_echo_resends_the_manifest_then_gives_up(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.expect("hello")
        await d.say(**HELLO)
        await d.expect("manifest")
        await d.expect("manifest")
        await asyncio.sleep(5)

    events, device = await push(tmp_path, script)
    assert [f["type"] for f in device.received] == ["hello", "manifest", "manifest"]
    assert end(events).message == (
        "the device on /dev/ttyTEST did not acknowledge the manifest "
        "(no echo after 2 sends, 0.3 s each)"
    )
    assert [e.state for e in events if isinstance(e, LinkStatus)][-1] == "lost"


async def test_a_manifest_too_big_for_the_device_is_not_sent(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.expect("hello")
        await d.say(**{**HELLO, "max_frame": 512})
        await asyncio.sleep(5)

    long_raw = RAW.replace('"name":"fw"', '"name":"' + "x" * 600 + '"')
    parsed = parse_manifest(long_raw)
    assert isinstance(parsed, Manifest)
    host, far = memory_pair()
    device = Device(far)

    async def open_port(path: str, baud: int) -> BytePort:
        return host

    link = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)
    (tmp_path / "a.bin").write_bytes(b"abc")
    task = asyncio.create_task(script(device))
    req = InstallRequest(manifest=parsed, files=(tmp_path / "a.bin",), workdir=tmp_path)
    events = [e async for e in link.install(req)]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    message = end(events).message
    assert message.startswith("the manifest does not fit the device on /dev/ttyTEST: ")
    assert "at most 512 fit" in message
    assert [f["type"] for f in device.received] == ["hello"]


async def test_pings_keep_a_slow_device_alive_and_silence_ends_the_push(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INSTALL")
        for _ in range(3):  # answers pings for a while: longer than the silence limit
            ping = await d.expect("ping")
            await d.say(type="pong", seq=ping["seq"])
        await asyncio.sleep(10)  # then nothing

    loop = asyncio.get_running_loop()
    start = loop.time()
    events, device = await push(tmp_path, script)
    took = loop.time() - start
    message = end(events).message
    assert message.startswith("the device on /dev/ttyTEST stopped answering (nothing for ")
    assert message.endswith(" s while installing)")
    assert [e.state for e in events if isinstance(e, LinkStatus)][-1] == "lost"
    assert 0.6 + 0.8 < took < 4
    seqs = [f["seq"] for f in device.received if f["type"] == "ping"]
    assert seqs[:3] == [1, 2, 3]


async def test_busy_extends_the_silence_limit(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INSTALL")
        await d.say(type="busy", seconds=1, message="rebooting into 2.0.0")
        await asyncio.sleep(1.3)  # longer than the 0.8 s silence limit, within busy + silence
        await d.say(**{**HELLO, "version": "2.0.0"})

    events, _ = await push(tmp_path, script)
    assert end(events) == Finished(True, "the device restarted and runs 2.0.0")
    assert Step("rebooting into 2.0.0", stream="device") in events


async def test_a_restart_into_the_old_version_fails(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INSTALL")
        await d.say(**HELLO)

    events, _ = await push(tmp_path, script)
    assert end(events) == Finished(False, "the device restarted during the push and runs 1.0.0")


async def test_installed_version_of_another_version_fails(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INIT", version="1.9.0")  # a leftover: ignored
        await d.report("INSTALL")
        await d.report("INSTALLED_VERSION", version="1.0.0")

    events, _ = await push(tmp_path, script)
    assert end(events) == Finished(False, "the device reports it runs 1.0.0, not 2.0.0")
    relayed = [e.report.version for e in events if isinstance(e, DeviceReport)]
    assert relayed == ["2.0.0"]


async def test_an_error_status_without_message_is_named(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("DOWNLOAD_ERROR")

    events, _ = await push(tmp_path, script)
    assert end(events) == Finished(False, "the device reported DOWNLOAD_ERROR")


async def test_an_error_frame_from_the_device_fails_the_push(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.say(type="error", message="unknown frame type 'ping'")

    events, _ = await push(tmp_path, script)
    assert end(events).message == (
        "the device did not understand a frame: unknown frame type 'ping'"
    )


async def test_a_request_for_a_file_not_in_the_manifest_fails(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.say(type="send", files=["other.bin"])
        await asyncio.sleep(5)

    events, _ = await push(tmp_path, script)
    assert end(events).message == "the device asked for 'other.bin', which is not in the manifest"


async def test_a_device_silent_during_the_batch_is_lost_within_the_block_timeouts(
    tmp_path: Path,
) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.say(type="send", files=["a.bin"])
        await d.port.write(b"C")
        await asyncio.sleep(10)  # reads nothing more, answers nothing

    loop = asyncio.get_running_loop()
    start = loop.time()
    events, _ = await push(tmp_path, script)
    took = loop.time() - start
    message = end(events).message
    assert message.startswith("the transfer to /dev/ttyTEST failed: "), message
    assert "a.bin" in message
    assert [e.state for e in events if isinstance(e, LinkStatus)][-1] == "lost"
    assert took < 4


async def test_cancel_before_the_batch_sends_the_cancel_frame(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []

    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INIT")
        got.append(await d.expect("cancel"))
        await d.report("INSTALL_ABORTED", "cancelled by the technician")
        await d.say(type="cancelled", aborted=True, message="stopped")

    host, far = memory_pair()
    device = Device(far)

    async def open_port(path: str, baud: int) -> BytePort:
        return host

    link = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)
    task = asyncio.create_task(script(device))
    async with contextlib.aclosing(link.install(request(tmp_path))) as stream:
        async for event in stream:
            if isinstance(event, DeviceReport):
                break
    await asyncio.wait_for(task, 3)
    assert got == [{"type": "cancel", "reason": "cancelled by the technician"}]
    with pytest.raises(PortClosed):  # the host closed its port
        await far.read(10, 1.0)


async def test_no_token_or_identity_secret_goes_down_the_line(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INSTALLED_VERSION")

    events, device = await push(tmp_path, script)
    assert end(events).ok
    sent = json.dumps(device.received)
    assert "token" not in sent.lower()
    assert {f["type"] for f in device.received} == {"hello", "manifest"}


async def test_cancelling_the_consuming_task_cancels_on_the_device(tmp_path: Path) -> None:
    """What the engine does: it cancels the task that iterates install()."""
    got: list[dict[str, Any]] = []
    reported = asyncio.Event()

    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INSTALL")
        reported.set()
        got.append(await d.expect("cancel"))
        await d.say(type="cancelled", aborted=False, message="flash write in progress")

    host, far = memory_pair()
    device = Device(far)

    async def open_port(path: str, baud: int) -> BytePort:
        return host

    link = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)
    events: list[InstallEvent] = []

    async def consume() -> None:
        async with contextlib.aclosing(link.install(request(tmp_path))) as stream:
            async for event in stream:
                events.append(event)

    script_task = asyncio.create_task(script(device))
    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(reported.wait(), 3)
    await asyncio.sleep(0.05)
    consumer.cancel()
    results = await asyncio.gather(consumer, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    await asyncio.wait_for(script_task, 3)
    assert got == [{"type": "cancel", "reason": "cancelled by the technician"}]
    assert not any(isinstance(e, Finished) for e in events)
    with pytest.raises(PortClosed):
        await far.read(10, 1.0)


async def test_a_payload_file_that_cannot_be_read_fails_before_the_port_opens(
    tmp_path: Path,
) -> None:
    opened: list[str] = []

    async def open_port(path: str, baud: int) -> BytePort:
        opened.append(path)
        raise AssertionError("must not open")

    req = request(tmp_path)
    (tmp_path / "a.bin").unlink()
    link = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)
    events = [e async for e in link.install(req)]
    assert end(events) == Finished(
        False, f"cannot read {tmp_path / 'a.bin'}: No such file or directory"
    )
    assert not opened


async def test_each_report_carries_the_time_of_its_frame(tmp_path: Path) -> None:
    async def script(d: Device) -> None:
        await d.greet()
        await d.say(type="otau_in", version="2.0.0", status="INIT", message="", time=1764252000.25)
        await d.report("TEST")  # no time: the device has no clock it trusts
        await d.say(type="send", files=[])
        await d.say(type="otau_in", version="2.0.0", status="INSTALLED_VERSION", time=1764252009)

    events, _ = await push(tmp_path, script)
    assert end(events).ok
    reports = [(e.report.status.value, e.time) for e in events if isinstance(e, DeviceReport)]
    assert reports == [("INIT", 1764252000.25), ("TEST", None), ("INSTALLED_VERSION", 1764252009)]


class StuckWrites(PassThroughPort):
    """The host's port once the device stopped reading it (a pty whose buffer is full): after
    `ok` writes, a write never completes."""

    def __init__(self, inner: BytePort, ok: int) -> None:
        super().__init__(inner)
        self.ok = ok

    async def write(self, data: bytes) -> None:
        if self.ok <= 0:
            await asyncio.Event().wait()
        self.ok -= 1
        await self.inner.write(data)


def stuck_link(host: BytePort, ok: int) -> SerialLink:
    async def open_port(path: str, baud: int) -> BytePort:
        return StuckWrites(host, ok)

    return SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)


async def test_a_device_that_stops_reading_ends_the_push_within_the_silence_timeout(
    tmp_path: Path,
) -> None:
    host, far = memory_pair()
    device = Device(far)
    task = asyncio.create_task(device.greet())  # the manifest write never completes
    events: list[InstallEvent] = []
    try:
        async with (
            asyncio.timeout(5),
            contextlib.aclosing(stuck_link(host, ok=1).install(request(tmp_path))) as stream,
        ):
            async for event in stream:
                events.append(event)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert end(events).message == (
        "the device on /dev/ttyTEST stopped reading "
        "(a frame waited 0.8 s to be sent while waiting for the device)"
    )
    assert [e.state for e in events if isinstance(e, LinkStatus)][-1] == "lost"


async def test_cancelling_a_push_whose_device_stopped_reading_ends(tmp_path: Path) -> None:
    host, far = memory_pair()
    device = Device(far)

    async def script(d: Device) -> None:
        await d.greet()
        await d.report("INIT")  # then the host's pings and cancel frame are never sent

    task = asyncio.create_task(script(device))
    link = stuck_link(host, ok=2)  # hello and manifest
    loop = asyncio.get_running_loop()
    async with contextlib.aclosing(link.install(request(tmp_path))) as stream:
        async for event in stream:
            if isinstance(event, DeviceReport):
                start = loop.time()
                break
    took = loop.time() - start
    await asyncio.wait_for(task, 3)
    assert took < 2.5, took  # the cancel frame waited T.cancel at most, not forever
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("serial push")]


async def test_a_bug_ends_the_push_with_one_line_and_logs_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(StuckWrites):
        async def readline(self, timeout: float, limit: int = 65536) -> bytes | None:
            raise RuntimeError("a bug")

    async def open_port(path: str, baud: int) -> BytePort:
        return Broken(memory_pair()[0], ok=10)

    link = SerialLink("/dev/ttyTEST", identity="s1", open_port=open_port, timeouts=T)
    with caplog.at_level(logging.ERROR, logger="otatui.links.serial_push"):
        async with contextlib.aclosing(link.install(request(tmp_path))) as stream:
            events = [e async for e in stream]
    assert end(events).message == "serial link on /dev/ttyTEST failed: RuntimeError: a bug"
    assert "Traceback" in caplog.text and "a bug" in caplog.text
