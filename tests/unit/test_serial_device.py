"""The simulated serial device on its own, driven frame by frame over in-memory ports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from otatui.links.byte_port import BytePort, memory_pair
from otatui.sim.serial_device import SerialDevice

SHA = "ab" * 32


class Host:
    def __init__(self, port: BytePort) -> None:
        self.port = port

    async def say(self, **data: Any) -> None:
        await self.port.write(json.dumps(data).encode() + b"\n")

    async def hear(self) -> dict[str, Any]:
        line = await self.port.readline(3.0)
        assert line is not None, "the device said nothing"
        data: dict[str, Any] = json.loads(line)
        return data

    async def statuses(self) -> list[str]:
        """Reports until a final one."""
        seen = []
        while True:
            frame = await self.hear()
            if frame["type"] == "otau_in":
                seen.append(frame["status"])
                if frame["status"] in ("INSTALLED_VERSION", "TEST_ERROR", "INSTALL_ERROR"):
                    return seen


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    near, far = memory_pair(("host", "device"))
    device = SerialDevice(
        far, identity="s1", installed_version="1.0.0", folder=tmp_path, step_delay=0.0
    )
    task = asyncio.create_task(device.run())
    try:
        yield Host(near)
    finally:
        await near.aclose()
        await asyncio.wait_for(task, 3)  # the device ends when its port closes


async def test_hello_ping_and_a_cancel_outside_a_push(host: Host) -> None:
    await host.say(type="hello", protocol=1, host="test")
    hello = await host.hear()
    assert hello["identity"] == "s1" and hello["version"] == "1.0.0" and hello["files"] == []
    assert hello["max_frame"] >= 512 and hello["time"] > 1e9
    await host.say(type="ping", seq=9)
    assert await host.hear() == {"type": "pong", "seq": 9}
    await host.say(type="cancel", reason="x")
    assert await host.hear() == {
        "type": "cancelled",
        "aborted": False,
        "message": "nothing to cancel",
    }


async def test_bad_frames_get_an_error_frame_and_the_device_goes_on(host: Host) -> None:
    await host.port.write(b'{"type":"ping"}\n')
    assert await host.hear() == {
        "type": "error",
        "message": "ping frame: 'seq' must be an integer, not null",
    }
    await host.port.write(b'{"type":"reboot"}\n')
    assert await host.hear() == {"type": "error", "message": "unknown frame type 'reboot'"}
    await host.port.write(b"garbage without a brace\n")
    await host.say(type="ping", seq=1)
    assert await host.hear() == {"type": "pong", "seq": 1}


async def test_an_over_long_line_is_dropped_with_an_error_frame(host: Host) -> None:
    await host.port.write(b"x" * 70_000 + b"\n")
    frame = await host.hear()
    assert frame["type"] == "error" and "longer than 65536 bytes" in frame["message"]
    await asyncio.sleep(0.1)
    await host.say(type="ping", seq=2)
    assert await host.hear() == {"type": "pong", "seq": 2}


async def test_an_invalid_manifest_is_echoed_then_refused(host: Host) -> None:
    raw = '{"version":"2.0.0","name":"x","type":"ZIP","payload":"a"}'
    await host.say(type="manifest", manifest=raw, files=[])
    assert await host.hear() == {"type": "echo", "manifest": raw}
    report = await host.hear()
    assert report["status"] == "TEST_ERROR" and report["version"] == "2.0.0"
    assert "ZIP" in report["message"]


async def test_a_file_list_that_does_not_match_the_manifest_is_refused(host: Host) -> None:
    raw = '{"version":"2.0.0","name":"x","type":"URL_LIST","payload":["a.bin","b.bin"]}'
    files = [{"name": "a.bin", "size": 1, "sha256": SHA}]
    await host.say(type="manifest", manifest=raw, files=files)
    assert (await host.hear())["type"] == "echo"
    assert await host.statuses() == ["INIT", "TEST", "TEST_STEP", "TEST_ERROR"]


async def test_a_json_manifest_installs_without_files_and_persists(tmp_path: Path) -> None:
    raw = '{"version":"3.0.0","name":"cfg","type":"JSON","payload":{"gain":2}}'
    near, far = memory_pair()
    device = SerialDevice(
        far, identity="s1", installed_version="1.0.0", folder=tmp_path, step_delay=0.0
    )
    task = asyncio.create_task(device.run())
    host = Host(near)
    await host.say(type="manifest", manifest=raw, files=[])
    assert (await host.hear())["type"] == "echo"
    flow = await host.statuses()
    assert flow[:5] == ["INIT", "TEST", "TEST_STEP", "TEST_SUCCESS", "DOWNLOAD"]
    assert flow[-3:] == ["INSTALL", "INSTALL_SUCCESS", "INSTALLED_VERSION"]
    await near.aclose()
    await asyncio.wait_for(task, 3)
    # a restarted device keeps the version it installed, not the one it was started with
    again = SerialDevice(far, identity="s1", installed_version="1.0.0", folder=tmp_path)
    assert again.installed_version == "3.0.0"


async def test_a_repeated_manifest_is_echoed_again_and_a_hello_ends_the_push(
    tmp_path: Path,
) -> None:
    raw = '{"version":"2.0.0","name":"x","type":"JSON","payload":{}}'
    near, far = memory_pair()
    device = SerialDevice(
        far, identity="s1", installed_version="1.0.0", folder=tmp_path, step_delay=0.3
    )
    task = asyncio.create_task(device.run())
    host = Host(near)
    await host.say(type="manifest", manifest=raw, files=[])
    assert (await host.hear())["type"] == "echo"
    assert (await host.hear())["status"] == "INIT"
    await host.say(type="manifest", manifest=raw, files=[])
    assert (await host.hear()) == {"type": "echo", "manifest": raw}
    await host.say(type="hello", protocol=1, host="again")
    frame = await host.hear()
    while frame["type"] != "hello":
        frame = await host.hear()
    await asyncio.sleep(0.5)
    assert await near.read(4096, 0.1) == b""  # the abandoned push says nothing more
    await near.aclose()
    await asyncio.wait_for(task, 3)
    assert device.installed_version == "1.0.0"


def test_unknown_fail_modes_are_refused(tmp_path: Path) -> None:
    async def build() -> None:
        _, far = memory_pair()
        SerialDevice(far, identity="s", installed_version="1", folder=tmp_path, fail="later")

    with pytest.raises(ValueError, match="fail must be one of test, install, not 'later'"):
        asyncio.run(build())
