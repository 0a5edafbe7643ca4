"""`otatui sim-device serial --pty` as a process: prints its path, serves pushes, prints the
protocol trace, and exits on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from link_helpers import collect, finished, reports
from serial_helpers import FAST, make_request

from otatui.links.byte_port import SerialPort
from otatui.links.serial import SerialLink

CLI = Path(sys.executable).with_name("otatui")


async def sim_device(*args: str) -> asyncio.subprocess.Process:
    """`otatui sim-device <args>` started, its stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        str(CLI),
        "sim-device",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class SimProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line(self, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, f"the command ended early: {self.lines}"
        text = raw.decode().rstrip("\n")
        self.lines.append(text)
        return text

    async def until(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = re.search(pattern, await self.line(deadline - loop.time()))
            if found:
                return found


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimProcess]:
    proc = await sim_device(
        "serial",
        "--pty",
        "--identity",
        "s1",
        "--version",
        "1.0.0",
        "--folder",
        str(tmp_path / "device"),
        "--step-delay",
        "0",
    )
    try:
        yield SimProcess(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_command_prints_its_path_answers_hello_and_stops_on_sigterm(
    sim: SimProcess,
) -> None:
    path = (await sim.until(r"^serial device s1 \(runs 1\.0\.0\) on (/dev/\S+)$")).group(1)
    config = await sim.line()
    assert config == f'bridge config: link = "serial:{path}?baud=115200"'
    port = await SerialPort.open(path)
    try:
        await port.write(b'{"type":"hello","protocol":1,"host":"test"}\n')
        line = await port.readline(5.0)
    finally:
        await port.aclose()
    assert line is not None
    hello = json.loads(line)
    assert hello["type"] == "hello" and hello["identity"] == "s1" and hello["version"] == "1.0.0"
    await sim.until(r'host → device\s+\{"type":"hello","protocol":1,"host":"test"\}$')
    await sim.until(r'device → host\s+\{"type":"hello",')
    sim.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(sim.proc.wait(), 10) == 0


async def test_a_push_to_the_command_shows_the_protocol_trace(
    sim: SimProcess, tmp_path: Path
) -> None:
    path = (await sim.until(r" on (/dev/\S+)$")).group(1)
    link = SerialLink(path, identity="s1", timeouts=FAST)
    events = await collect(link, make_request(tmp_path, {"fw.bin": b"x" * 3000}))
    assert finished(events).ok
    assert reports(events)[-1] == "INSTALLED_VERSION"
    await sim.until(r"ymodem\s+received fw\.bin \(3000 bytes\)$")
    await sim.until(r'"status":"INSTALLED_VERSION"')
    sim.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(sim.proc.wait(), 10) == 0
    assert (tmp_path / "device" / "installed" / "fw.bin").read_bytes() == b"x" * 3000


async def test_usage_errors_exit_2_with_one_line() -> None:
    proc = await sim_device(
        "serial",
        "--pty",
        "--fail",
        "later",
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().count("\n") == 1 and "invalid choice: 'later'" in err.decode()


async def test_the_lan_command_follows_a_manifest_of_the_local_connector(tmp_path: Path) -> None:
    from otatui.connector import Connector

    connector = Connector(host="127.0.0.1", http_port=0, mqtt_port=0)
    await connector.start()
    connector.add_device("lan-1")
    proc = await sim_device(
        "lan",
        "--url",
        connector.http_url,
        "--mqtt-url",
        connector.mqtt_url,
        "--identity",
        "lan-1",
        "--folder",
        str(tmp_path / "lan"),
        "--step-delay",
        "0",
    )
    sim = SimProcess(proc)
    try:
        await sim.until(r"^lan device lan-1 \(runs 1\.0\.0\) on http://127\.0\.0\.1:\d+ over mqtt$")
        await sim.until(r'device → connector\s+otau_in .*"INSTALLED_VERSION"', timeout=20)
        manifest = {"version": "2.0.0", "name": "cfg", "type": "JSON", "payload": {"gain": 2}}
        connector.set_config_otau("lan-1", manifest)
        await sim.until(r"device → connector\s+config_otau \{", timeout=20)
        await sim.until(r'otau_in \{"version":"2\.0\.0","status":"INSTALLED_VERSION"', timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        token = connector.device("lan-1").token
        assert token and all(token not in line for line in sim.lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await connector.stop()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--port", "/dev/ttyNOPE"], 1, "otatui: cannot open /dev/ttyNOPE: no such device\n"),
        (
            ["--pty", "--folder", "/proc/nope/x"],
            2,
            "otatui: cannot use the folder /proc/nope/x: No such file or directory\n",
        ),
    ],
)
async def test_command_errors_are_one_line(args: list[str], code: int, message: str) -> None:
    proc = await sim_device(
        "serial",
        *args,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == code
    assert err.decode() == message and out == b""


async def test_the_lan_command_refused_by_the_connector_exits_1_with_one_line(
    tmp_path: Path,
) -> None:
    from otatui.connector import Connector

    taken = [("lan-1", "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y")]  # provisioned elsewhere
    async with Connector(host="127.0.0.1", http_port=0, mqtt_port=None, devices=taken) as connector:
        proc = await sim_device(
            "lan",
            "--url",
            connector.http_url,
            "--protocol",
            "http",
            "--identity",
            "lan-1",
            "--folder",
            str(tmp_path / "lan"),
        )
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 1, err
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otatui: "), lines
    assert "lan-1 is already provisioned" in lines[0]
