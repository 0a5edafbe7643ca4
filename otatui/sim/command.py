"""`otatui sim-device ...`: run a simulated device from the command line.

`otatui sim-device lan --url URL [--mqtt-url URL]` runs a device of ours against a connector
(the local one a bridge serves, or any Murano-compatible one): it activates, follows manifests
and reports; each write the connector confirmed is printed, the token never.

`otatui sim-device serial --pty` creates a pty pair and serves the device side of the serial
protocol (docs/serial-link.md) on it; the path to put in a bridge's `link = "serial:<path>"` is
printed first. `--port PATH` serves an existing serial port instead (a USB adapter looped to
another one, or one end of `socat -d -d pty,raw,echo=0 pty,raw,echo=0`). Every frame sent and
received is printed as a protocol trace. SIGINT/SIGTERM stop it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

_FAIL_MODES = ("test", "install")  # SerialDevice checks them too
_ARROWS = {"recv": "host → device", "send": "device → host", "ymodem": "ymodem", "note": "note"}
_LAN_ARROWS = {"send": "device → connector"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sub-commands and options of `otatui sim-device`."""
    kinds = parser.add_subparsers(dest="kind", metavar="{serial,lan}", required=True)
    serial = kinds.add_parser(
        "serial",
        help="a device on a serial port (docs/serial-link.md)",
        description="Serve the device side of the otatui serial protocol and print every frame.",
    )
    where = serial.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="PATH", help="an existing serial port to serve")
    where.add_argument(
        "--pty", action="store_true", help="create a pty pair and print the path for the bridge"
    )
    serial.add_argument("--baud", type=int, default=115200, help="with --port (default 115200)")
    _common(serial)
    serial.add_argument(
        "--drop-after",
        type=_non_negative,
        metavar="BYTES",
        help="vanish (close the port) after receiving this many bytes, like a cable pulled out",
    )

    lan = kinds.add_parser(
        "lan",
        help="a device on the local network that talks to a (local) connector",
        description="Run a device of ours against a connector and print what it writes.",
    )
    lan.add_argument("--url", required=True, help="the connector's HTTP device API base URL")
    lan.add_argument("--mqtt-url", metavar="URL", help="its MQTT URL (for --protocol mqtt)")
    lan.add_argument("--protocol", choices=("mqtt", "http"), default="mqtt")
    lan.add_argument("--ca-file", metavar="PEM", help="trust this CA for TLS connector URLs")
    _common(lan, fail_modes=(*_FAIL_MODES, "download"))


def _common(parser: argparse.ArgumentParser, fail_modes: tuple[str, ...] = _FAIL_MODES) -> None:
    parser.add_argument("--identity", default="sim-serial-1", help="the device's identity")
    parser.add_argument(
        "--version",
        default="1.0.0",
        help="installed version at the first start (later: the one kept in --folder)",
    )
    parser.add_argument(
        "--folder",
        metavar="DIR",
        help="keep installed version and received files here (default: a temporary folder)",
    )
    parser.add_argument("--fail", choices=fail_modes, help="make that step of the update fail")
    parser.add_argument(
        "--step-delay",
        type=_non_negative_float,
        default=0.5,
        metavar="SECONDS",
        help="pause between two reports (default 0.5)",
    )


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the simulated device until SIGINT/SIGTERM or until its port closes; 0 then."""
    try:
        folder, temporary = _folder(args.folder)
    except OSError as exc:
        print(
            f"otatui: cannot use the folder {args.folder}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    try:
        if args.kind == "lan":
            return asyncio.run(_serve_lan(args, folder, out))
        return asyncio.run(_serve_serial(args, folder, out))
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _folder(given: str | None) -> tuple[Path, bool]:
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="otatui-sim-serial-")), True


def _printer(out: TextIO, arrows: dict[str, str] = _ARROWS) -> Callable[[str, str], None]:
    width = max(len(a) for a in arrows.values())

    def trace(kind: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime())
        print(f"{stamp}  {arrows.get(kind, kind):<{width}} {text}", file=out, flush=True)

    return trace


async def _serve_serial(args: argparse.Namespace, folder: Path, out: TextIO) -> int:
    # imported here so that building the command line parser stays quick
    from otatui.links.byte_port import BytePort, FdPort, LinkError, SerialPort
    from otatui.sim.pty_pair import PtyPair
    from otatui.sim.serial_device import SerialDevice

    trace = _printer(out)
    pty: PtyPair | None = None
    port: BytePort
    if args.pty:
        pty = PtyPair()
        path = pty.slave_path
        try:
            port = FdPort(pty.master, name=path)
        except BaseException:
            pty.close()
            raise
        pty.disown_master()  # the device's port closes it: dropping the link hangs up the line
    else:
        path = args.port
        try:
            port = await SerialPort.open(path, args.baud)
        except LinkError as exc:
            print(f"otatui: {exc}", file=sys.stderr)
            return 1
    try:
        device = SerialDevice(
            port,
            identity=args.identity,
            installed_version=args.version,
            folder=folder,
            fail=args.fail,
            drop_after=args.drop_after,
            step_delay=args.step_delay,
            trace=trace,
        )
        print(
            f"serial device {args.identity} (runs {device.installed_version}) on {path}",
            file=out,
            flush=True,
        )
        print(f'bridge config: link = "serial:{path}?baud={args.baud}"', file=out, flush=True)
        print(f"files and state in {folder}", file=out, flush=True)
        await _until_stopped(device.run())
        if device.dropped:
            trace("note", f"dropped the link after {args.drop_after} bytes, as asked")
        return 0
    finally:
        with contextlib.suppress(LinkError, OSError):
            await port.aclose()
        if pty is not None:
            pty.close()


async def _until_stopped(work: Awaitable[None]) -> None:
    """Run `work` until it ends (what it failed with is raised here) or SIGINT/SIGTERM arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        for pending in (task, stopper):
            pending.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve_lan(args: argparse.Namespace, folder: Path, out: TextIO) -> int:
    from otatui.sim.lan_device import LanDevice, LanDeviceError

    trace = _printer(out, {**_ARROWS, **_LAN_ARROWS})
    try:
        device = LanDevice(
            base_url=args.url,
            mqtt_url=args.mqtt_url,
            identity=args.identity,
            protocol=args.protocol,
            installed_version=args.version,
            folder=folder,
            fail=args.fail,
            step_delay=args.step_delay,
            ca_file=args.ca_file,
        )
    except ValueError as exc:
        print(f"otatui: {exc}", file=sys.stderr)
        return 2
    print(
        f"lan device {args.identity} (runs {args.version}) on {args.url} over {args.protocol}",
        file=out,
        flush=True,
    )
    print(f"files and state in {folder}", file=out, flush=True)

    async def watch() -> None:
        shown, state = 0, None
        while True:
            current = (device.channel_state.state, device.channel_state.reason)
            if current != state:
                state = current
                trace("note", f"connection {current[0].value}: {current[1]}")
            for alias, value in device.written[shown:]:
                trace("send", f"{alias} {value}")
            shown = len(device.written)
            await asyncio.sleep(0.1)

    watcher = asyncio.ensure_future(watch())
    try:
        await _until_stopped(device.run())
    except LanDeviceError as exc:
        print(f"otatui: {exc}", file=sys.stderr)
        return 1
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return 0
