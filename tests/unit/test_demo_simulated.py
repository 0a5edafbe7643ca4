"""The demo's simulated devices: a serial device whose run ended serves again on a fresh port;
stopping them says which one had failed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from otatui.demo.script import DemoDevice
from otatui.demo.simulated import Simulated, _serve_forever
from otatui.links import serial_frames as sf
from otatui.links.byte_port import BytePort, FdPort, SerialPort
from otatui.sim.pty_pair import PtyPair
from otatui.sim.serial_device import SerialDevice


async def hello(port: BytePort) -> sf.DeviceHello:
    await port.write(sf.encode(sf.HostHello(host="test")))
    line = await port.readline(3.0)
    assert line is not None, "the device did not answer hello"
    frame = sf.decode_from_device(line)
    assert isinstance(frame, sf.DeviceHello), frame
    return frame


async def test_a_serial_device_whose_run_ended_serves_again(tmp_path: Path) -> None:
    made: list[SerialDevice] = []

    def make(port: FdPort) -> SerialDevice:
        made.append(SerialDevice(port, identity="s1", installed_version="1.0.0", folder=tmp_path))
        return made[-1]

    with PtyPair() as pty:
        host = await SerialPort.open(pty.slave_path)
        task = asyncio.create_task(_serve_forever(make, pty, "demo pty"))
        try:
            assert (await hello(host)).identity == "s1"
            await made[0].port.aclose()  # its port fails: that run ends
            assert (await hello(host)).identity == "s1"
            assert len(made) == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await host.aclose()


async def test_stop_logs_a_device_that_had_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("simulated crash")

    sim = Simulated(tmp_path, step_delay=0.0)
    sim._run(DemoDevice("pump-9", "p9", "mqtt", "monitor"), broken())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="otatui.demo.simulated"):
        await sim.stop()
    assert "simulated pump-9 had failed: simulated crash" in caplog.text
