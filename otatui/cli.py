"""The `otatui` command line (DESIGN.md §3).

`otatui` alone opens the TUI on the default configuration; `otatui --config FILE ...` selects
another. Exit codes: 0 success, 1 a failure while doing the work, 2 a usage or configuration error
(with a one-line reason on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from otatui import __version__
from otatui.config import Config, ConfigError, TokenError, load_config
from otatui.engine.redaction import configured_secrets
from otatui.store import Store, StoreError, StoreReader

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A usage or configuration error: exit 2 with this one-line message."""


class CommandError(Exception):
    """The work failed: exit 1 with this one-line message on stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


Handler = Callable[[argparse.Namespace], int]

# What each sub-command does, for --help (DESIGN.md §3).
_SUBCOMMANDS: dict[str, str] = {
    "demo": "local connector + simulated fleet + TUI (--headless prints events instead)",
    "run": "run the update engine for the configured devices (--headless: JSON lines)",
    "connector": "serve the local Murano-compatible connector (HTTP + MQTT)",
    "status": "one line per device: connection, installed and offered version, last status",
    "history": "the status history of every device (--json, --csv)",
    "fetch": "download the payloads of each device's current manifest for offline work",
    "sync": "send the outbox backlog (reports not yet confirmed) with original timestamps",
    "sim-device": "run a simulated device (serial or LAN) to see the protocol in action",
    "config": "check the configuration and show it, secrets redacted, with the paths in use",
}


def _not_available(name: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        raise UsageError(f"'{name}' is not available yet in otatui {__version__}")

    return handler


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo site: local connector, simulated fleet, scripted application side."""
    from otatui.demo.command import main as demo_main

    return demo_main(headless=args.headless, keep=args.keep, no_color=_no_color(args))


def _no_color(args: argparse.Namespace) -> bool:
    return bool(args.no_color or os.environ.get("NO_COLOR"))


def _load(args: argparse.Namespace) -> Config:
    """The configuration named by --config (or the default one); errors are usage errors."""
    try:
        return load_config(Path(args.config) if args.config else None)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def cmd_config(args: argparse.Namespace) -> int:
    """Validate the configuration and print it (secrets redacted) with the paths in use."""
    config = _load(args)
    print(json.dumps(config.redacted_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _secrets(config: Config) -> list[str]:
    """Every token the configuration can reveal, to keep them out of any output."""
    return configured_secrets(config)


def cmd_run(args: argparse.Namespace) -> int:
    """The update engine for every configured device; --headless prints JSON lines."""
    if not args.headless:
        return cmd_tui(args)
    config = _load(args)
    return asyncio.run(_run_headless(config))


def cmd_tui(args: argparse.Namespace) -> int:
    """The terminal UI on the configuration (the engine runs inside it)."""
    config = _load(args)
    from otatui.tui.launch import run_tui

    return run_tui(config, no_color=args.no_color)


async def _run_headless(config: Config) -> int:
    from otatui.engine.events import EventBus
    from otatui.engine.fleet import Fleet
    from otatui.engine.jsonlines import JsonLinesPrinter

    bus = EventBus()
    printer = JsonLinesPrinter(bus, sys.stdout, secrets=_secrets(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer.start()
    try:
        async with Fleet(config, bus=bus) as fleet:
            fleet.start()
            await stop.wait()
    except StoreError as exc:  # e.g. another otatui already runs on this data dir
        raise CommandError(str(exc)) from None
    finally:
        await printer.stop()
    return EXIT_OK


def cmd_sim_device(args: argparse.Namespace) -> int:
    """A simulated device (serial or LAN) that prints its side of the protocol."""
    from otatui.sim.command import run

    return run(args)


def _open_reader(config: Config) -> StoreReader | None:
    """The store, read-only (another otatui may be writing it); ``None`` if there is none yet."""
    path = config.locations.db_path
    if not path.exists():
        return None
    try:
        return StoreReader.open_readonly(path)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def _write_lines(lines: Sequence[str], redact: Callable[[str], str]) -> None:
    for line in lines:
        print(redact(line))


def cmd_connector(args: argparse.Namespace) -> int:
    """Serve the local Murano-compatible connector until interrupted.

    With --config, the configured devices are registered with their tokens (a device without a
    token is whitelisted for activation), so the same configuration works against it.
    """
    from otatui.connector.server import serve_forever

    devices: list[tuple[str, str | None]] = []
    if args.config:
        for device in _load(args).devices:
            try:
                token = device.token_value()
            except TokenError:
                token = None
            devices.append((device.identity, token))
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if (args.https_port is not None or args.mqtts_port is not None) and not args.tls_cert:
        raise UsageError("--https-port/--mqtts-port need --tls-cert and --tls-key")

    def ready(connector: Any) -> None:
        for name, url in connector.urls().items():
            print(f"{name}: {url}", flush=True)

    async def serve() -> None:
        task = asyncio.create_task(
            serve_forever(
                host=args.host,
                http_port=args.http_port,
                mqtt_port=args.mqtt_port,
                https_port=args.https_port,
                mqtts_port=args.mqtts_port,
                control_port=args.control_port,
                tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                tls_key=Path(args.tls_key) if args.tls_key else None,
                data_dir=Path(args.data_dir) if args.data_dir else None,
                devices=devices,
                allow_any_identity=args.allow_any_identity,
                ready=ready,
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"otatui: connector: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """One line per configured device from the config and the store (no network)."""
    from otatui.engine.overview import device_statuses, status_json, status_table
    from otatui.engine.redaction import Redactor

    config = _load(args)
    redact = Redactor.for_config(config)
    reader = _open_reader(config)
    try:
        statuses = device_statuses(config, reader)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if reader is not None:
            reader.close()
    if args.json:
        _write_lines([status_json(statuses)], redact)
    else:
        _write_lines(status_table(statuses), redact)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """The history, oldest first: a table, JSON lines (--json) or CSV (--csv)."""
    from otatui.engine import export
    from otatui.engine.redaction import Redactor

    config = _load(args)
    if args.device is not None:
        try:
            config.device(args.device)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
    redact = Redactor.for_config(config)
    reader = _open_reader(config)
    write = export.write_json_lines if args.json else export.write_csv if args.csv else None
    try:
        rows = export.history_rows(reader, args.device)
        if write is not None:
            write(rows, sys.stdout, redact)
        else:
            export.write_table(rows, sys.stdout, redact)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if reader is not None:
            reader.close()
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    """Send the outbox backlog with the reports' original timestamps."""
    from otatui.engine.overview import format_time
    from otatui.engine.redaction import Redactor
    from otatui.engine.sync import OutboxSync, summary_lines

    config = _load(args)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError("--timeout must be a positive number of seconds")
    redact = Redactor.for_config(config)
    if not config.locations.db_path.exists():
        _write_lines(["nothing to send: the outbox is empty"], redact)
        return EXIT_OK
    store = _open_store(config)
    try:
        result = asyncio.run(OutboxSync(config, store, timeout=args.timeout).run())
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    _write_lines(summary_lines(result, format_time), redact)
    return EXIT_OK if result.ok else EXIT_FAILURE


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download the payloads of the agents' and bridges' current manifests into the cache."""
    from otatui.engine.prefetch import DeviceFetch, Prefetch, device_lines
    from otatui.engine.redaction import Redactor

    config = _load(args)
    redact = Redactor.for_config(config)

    def show(result: DeviceFetch) -> None:
        _write_lines(device_lines(result), redact)
        sys.stdout.flush()

    store = _open_store(config)
    try:
        results = asyncio.run(Prefetch(config, store, on_device=show).run())
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    if not results:
        _write_lines(["no agent or bridge device configured: nothing to fetch"], redact)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


def _open_store(config: Config) -> Store:
    try:
        return Store.open(config.locations.db_path)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="otatui",
        description="Carry out and watch over-the-air updates of IoT devices on an Exosite "
        "Murano IoT Connector. Without a sub-command it opens the terminal UI.",
        epilog="Exit codes: 0 success, 1 failure, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"otatui {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: config.toml in the user config directory)",
    )
    parser.add_argument(
        "--no-color", action="store_true", help="no colours (the NO_COLOR variable does the same)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help=_SUBCOMMANDS["demo"], description=_SUBCOMMANDS["demo"])
    demo.add_argument("--headless", action="store_true", help="print events, no UI")
    demo.add_argument("--keep", action="store_true", help="keep the demo's data directory")

    run = sub.add_parser("run", help=_SUBCOMMANDS["run"], description=_SUBCOMMANDS["run"])
    run.add_argument("--headless", action="store_true", help="JSON lines on stdout, no UI")

    connector = sub.add_parser(
        "connector", help=_SUBCOMMANDS["connector"], description=_SUBCOMMANDS["connector"]
    )
    connector.add_argument("--host", default="127.0.0.1", help="address to listen on")
    connector.add_argument("--http-port", type=int, default=8080, help="HTTP device API port")
    connector.add_argument("--mqtt-port", type=int, default=1883, help="MQTT port")
    connector.add_argument("--https-port", type=int, help="HTTPS device API port (TLS)")
    connector.add_argument("--mqtts-port", type=int, help="MQTT over TLS port")
    connector.add_argument(
        "--control-port", type=int, default=8081, help="application-side control API (loopback)"
    )
    connector.add_argument("--tls-cert", metavar="PEM", help="server certificate for TLS ports")
    connector.add_argument("--tls-key", metavar="PEM", help="its private key")
    connector.add_argument(
        "--data-dir", metavar="DIR", help="keep devices, values, reports and content here"
    )
    connector.add_argument(
        "--allow-any-identity",
        action="store_true",
        help="activate any identity (else only the configured devices are whitelisted)",
    )

    status = sub.add_parser(
        "status", help=_SUBCOMMANDS["status"], description=_SUBCOMMANDS["status"]
    )
    status.add_argument("--json", action="store_true", help="JSON instead of text")

    history = sub.add_parser(
        "history", help=_SUBCOMMANDS["history"], description=_SUBCOMMANDS["history"]
    )
    history.add_argument("--device", metavar="NAME", help="only this device")
    fmt = history.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")

    sync = sub.add_parser("sync", help=_SUBCOMMANDS["sync"], description=_SUBCOMMANDS["sync"])
    sync.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up after this long; what is not delivered stays in the outbox (default 60)",
    )

    for name in ("fetch", "sim-device", "config"):
        sub.add_parser(name, help=_SUBCOMMANDS[name], description=_SUBCOMMANDS[name])
    from otatui.sim.command import add_arguments as add_sim_device_arguments

    add_sim_device_arguments(sub.choices["sim-device"])

    parser.set_defaults(handler=cmd_tui)
    for name in _SUBCOMMANDS:
        sub.choices[name].set_defaults(handler=_not_available(name))
    sub.choices["config"].set_defaults(handler=cmd_config)
    sub.choices["demo"].set_defaults(handler=cmd_demo)
    sub.choices["connector"].set_defaults(handler=cmd_connector)
    sub.choices["run"].set_defaults(handler=cmd_run)
    sub.choices["status"].set_defaults(handler=cmd_status)
    sub.choices["history"].set_defaults(handler=cmd_history)
    sub.choices["sync"].set_defaults(handler=cmd_sync)
    sub.choices["fetch"].set_defaults(handler=cmd_fetch)
    sub.choices["sim-device"].set_defaults(handler=cmd_sim_device)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # raw non-UTF-8 bytes of a stored value must not crash output
        reconfigure(errors="backslashreplace")
    try:
        return handler(args)
    except UsageError as exc:
        print(f"otatui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"otatui: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `otatui history | head`: the reader has gone, not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
