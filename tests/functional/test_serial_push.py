"""Serial pushes end to end over real pty pairs: SerialLink (host) and SerialDevice (device)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from pathlib import Path

import pytest
from link_helpers import collect, finished, pushed, reports, states
from pty_helpers import pty_pair
from serial_helpers import FAST, device_on_pty, make_request

from otatui.links.link import DeviceReport, InstallEvent, LinkStatus, Pushed
from otatui.links.serial import SerialLink

FW = os.urandom(5000)
CAL = b'{"gain": 1.25}\n' * 200
FILES = {"fw-2.1.0.bin": FW, "cal-2.1.0.json": CAL}
FULL_FLOW = [
    "INIT",
    "TEST",
    "TEST_STEP",
    "TEST_SUCCESS",
    "DOWNLOAD",
    "DOWNLOAD_STEP",
    "DOWNLOAD_STEP",
    "DOWNLOAD_SUCCESS",
    "INSTALL",
    "INSTALL_STEP",
    "INSTALL_STEP",
    "INSTALL_SUCCESS",
    "INSTALLED_VERSION",
]


async def test_a_push_of_two_files_ends_with_the_installed_version(tmp_path: Path) -> None:
    folder = tmp_path / "device"
    async with device_on_pty(folder, identity="s1", installed_version="1.0.0") as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, FILES))
    end = finished(events)
    assert end.ok, end
    assert reports(events) == FULL_FLOW
    assert all(e.report.version == "2.1.0" for e in events if isinstance(e, DeviceReport))
    assert states(events) == [
        "opening",
        "waiting",
        "connected",
        "transferring",
        "connected",
        "installing",
        "closed",
    ]
    last = {p.file: p for p in pushed(events)}
    assert last["fw-2.1.0.bin"] == Pushed("fw-2.1.0.bin", 0, 2, len(FW), len(FW))
    assert last["cal-2.1.0.json"] == Pushed("cal-2.1.0.json", 1, 2, len(CAL), len(CAL))
    # the device got exactly the files and keeps its new version
    assert (folder / "installed" / "fw-2.1.0.bin").read_bytes() == FW
    assert (folder / "installed" / "cal-2.1.0.json").read_bytes() == CAL
    assert json.loads((folder / "state.json").read_text())["installed_version"] == "2.1.0"
    # and the trace holds the documented frames in order
    sent = [json.loads(t)["type"] for t in sim.frames("send")]
    assert sent[:2] == ["hello", "echo"] and "send" in sent
    received = [json.loads(t)["type"] for t in sim.frames("recv")]
    assert received[:2] == ["hello", "manifest"]


async def test_the_device_failing_its_install_fails_the_push_with_its_message(
    tmp_path: Path,
) -> None:
    async with device_on_pty(
        tmp_path / "d", identity="s1", installed_version="1.0.0", fail="install"
    ) as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, FILES))
    end = finished(events)
    assert not end.ok
    assert end.message == "simulated install failure: flash verify failed"
    assert reports(events)[-1] == "INSTALL_ERROR"
    assert not (tmp_path / "d" / "state.json").exists()  # still runs 1.0.0


async def test_the_device_refusing_the_update_ends_after_its_test(tmp_path: Path) -> None:
    async with device_on_pty(
        tmp_path / "d", identity="s1", installed_version="1.0.0", fail="test"
    ) as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, FILES))
    end = finished(events)
    assert not end.ok and "simulated test failure" in end.message
    assert reports(events) == ["INIT", "TEST", "TEST_STEP", "TEST_ERROR"]
    assert not pushed(events)


async def test_a_device_with_another_identity_gets_nothing(tmp_path: Path) -> None:
    async with device_on_pty(tmp_path / "d", identity="s9", installed_version="1.0.0") as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, FILES))
        received = [json.loads(t)["type"] for t in sim.frames("recv")]
    end = finished(events)
    assert end.message == f"the device on {sim.path} says it is s9, expected s1"
    assert not end.ok and not reports(events)
    assert received == ["hello"]  # no manifest reached the wrong device


async def test_a_silent_device_fails_within_the_hello_timeouts(tmp_path: Path) -> None:
    with pty_pair() as pty:
        path = pty.slave_path
        link = SerialLink(path, identity="s1", timeouts=FAST)
        loop = asyncio.get_running_loop()
        start = loop.time()
        events = await collect(link, make_request(tmp_path, FILES), within=10)
        took = loop.time() - start
    end = finished(events)
    assert end.message == f"no device answers on {path} (no hello in 0.8 s)"
    assert states(events)[-1] == "lost"
    assert took < 3


async def test_a_port_that_cannot_be_opened_fails_with_one_line(tmp_path: Path) -> None:
    link = SerialLink(str(tmp_path / "ttyNONE"), identity="s1", timeouts=FAST)
    events = await collect(link, make_request(tmp_path, FILES), within=10)
    end = finished(events)
    assert not end.ok
    assert end.message == f"cannot open {tmp_path / 'ttyNONE'}: no such device"


async def test_a_dropped_link_fails_honestly_and_the_next_push_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "device"
    # the first file and a part of the second get through, then the device vanishes
    async with device_on_pty(
        folder, identity="s1", installed_version="1.0.0", drop_after=len(FW) + 2600
    ) as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = await collect(link, make_request(tmp_path, FILES, job="job-1"))
        took = loop.time() - start
        await asyncio.wait_for(sim.task, 5)  # the device ended by itself
        assert sim.device.dropped
    end = finished(first)
    assert not end.ok
    assert end.message == (
        f"the device on {sim.path} went away during the transfer of cal-2.1.0.json "
        "(the port closed)"
    )
    assert states(first)[-1] == "lost"
    assert took < 5
    assert [p.name for p in (folder / "held").iterdir()] == ["fw-2.1.0.bin"]

    # the same device back on another port: only the missing file is sent
    async with device_on_pty(folder, identity="s1", installed_version="1.0.0") as sim2:
        link = SerialLink(sim2.path, identity="s1", timeouts=FAST)
        second = await collect(link, make_request(tmp_path, FILES, job="job-2"))
        sends = [json.loads(t) for t in sim2.frames("send")]
    end = finished(second)
    assert end.ok, end
    hello = next(f for f in sends if f["type"] == "hello")
    assert hello["files"] == [
        {"name": "fw-2.1.0.bin", "size": len(FW), "sha256": hashlib.sha256(FW).hexdigest()}
    ]
    assert next(f for f in sends if f["type"] == "send")["files"] == ["cal-2.1.0.json"]
    assert reports(second) == FULL_FLOW
    steps = [e.report.message for e in second if isinstance(e, DeviceReport)]
    assert "fw-2.1.0.bin: already held" in steps
    connected = [e.detail for e in second if isinstance(e, LinkStatus)][2]
    assert connected == "s1 runs 1.0.0, already holds 1 of 2 files"
    assert (folder / "installed" / "cal-2.1.0.json").read_bytes() == CAL


async def test_a_device_that_hangs_mid_transfer_fails_within_the_block_timeouts(
    tmp_path: Path,
) -> None:
    async with device_on_pty(
        tmp_path / "d", identity="s1", installed_version="1.0.0", mute_after=3000
    ) as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        loop = asyncio.get_running_loop()
        start = loop.time()
        events = await collect(link, make_request(tmp_path, FILES))
        took = loop.time() - start
    end = finished(events)
    assert not end.ok
    assert end.message.startswith(f"the transfer to {sim.path} failed: no answer from the device")
    assert "of fw-2.1.0.bin" in end.message
    assert states(events)[-1] == "lost"
    # 3 sends of 0.6 s for the block, then 1 s for a report from the device
    assert took < 6


async def test_cancel_during_the_transfer_aborts_on_the_device(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)  # long enough to be cancelled in the middle
    folder = tmp_path / "device"
    async with device_on_pty(folder, identity="s1", installed_version="1.0.0") as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events: list[InstallEvent] = []
        stream = link.install(make_request(tmp_path, {"big.bin": big}))
        async with contextlib.aclosing(stream):
            async for event in stream:
                events.append(event)
                if isinstance(event, Pushed) and 0 < event.done < event.total:
                    break  # the consumer stops: the generator is closed (cancel)
        for _ in range(100):  # the device confirms after its abort report
            if any('"cancelled"' in t for t in sim.frames("send")):
                break
            await asyncio.sleep(0.05)
        sent = [json.loads(t) for t in sim.frames("send")]
        received = [json.loads(t) for t in sim.frames("recv")]
    assert {"type": "cancel", "reason": "cancelled by the technician"} in received
    assert sent[-2]["type"] == "otau_in" and sent[-2]["status"] == "INSTALL_ABORTED"
    assert sent[-1] == {
        "type": "cancelled",
        "aborted": True,
        "message": "stopped before installing",
    }
    assert not any(isinstance(e, DeviceReport) and e.report.status.is_final for e in events)
    assert not list((folder / "held").iterdir())
    assert not (folder / "state.json").exists()


@pytest.mark.parametrize("version", ["1.0.0"])
async def test_a_manifest_of_the_installed_version_is_reported_at_once(
    tmp_path: Path, version: str
) -> None:
    async with device_on_pty(tmp_path / "d", identity="s1", installed_version=version) as sim:
        link = SerialLink(sim.path, identity="s1", timeouts=FAST)
        events = await collect(link, make_request(tmp_path, FILES, version=version))
    assert finished(events).ok
    assert reports(events) == ["INSTALLED_VERSION"]
