"""The `otatui` command line (DESIGN.md §3).

`otatui` alone opens the TUI on the default configuration; `otatui --config FILE ...` selects
another. Exit codes: 0 success, 1 a failure while doing the work, 2 a usage or configuration error
(with a one-line reason on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from otatui import __version__
from otatui.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A usage or configuration error: exit 2 with this one-line message."""


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

    for name in ("fetch", "sync", "sim-device", "config"):
        sub.add_parser(name, help=_SUBCOMMANDS[name], description=_SUBCOMMANDS[name])

    parser.set_defaults(handler=_not_available("tui"))
    for name in _SUBCOMMANDS:
        sub.choices[name].set_defaults(handler=_not_available(name))
    sub.choices["config"].set_defaults(handler=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"otatui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
