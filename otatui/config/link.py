"""How a bridge reaches its offline device, as written in the config: ``lan`` or a serial port.

``serial:/dev/ttyUSB0?baud=115200`` names a serial port (an absolute device path, or ``COMn``) and
its speed (default 115200 baud). Error messages never echo the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

DEFAULT_BAUD = 115_200
MIN_BAUD = 50
MAX_BAUD = 12_000_000

_EXPECTED = "expected 'lan' or 'serial:<port>?baud=<n>'"
_COM_PORT = re.compile(r"COM[1-9][0-9]{0,2}", re.IGNORECASE)


@dataclass(frozen=True)
class SerialLink:
    """A device on a serial port."""

    port: str
    baud: int = DEFAULT_BAUD

    def __str__(self) -> str:
        return f"serial:{self.port}?baud={self.baud}"


@dataclass(frozen=True)
class LanLink:
    """A device on the local network, served by the local connector."""

    def __str__(self) -> str:
        return "lan"


def parse_link(value: object) -> SerialLink | LanLink | None:
    """Parse a ``link`` value; raises ``ValueError`` with a one-line reason."""
    if value is None or isinstance(value, SerialLink | LanLink):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string: {_EXPECTED}")
    if value == "lan":
        return LanLink()
    if not value.startswith("serial:"):
        raise ValueError(f"unknown link kind; {_EXPECTED}")
    port, _, query = value.removeprefix("serial:").partition("?")
    if not port:
        raise ValueError("serial link has no port; expected e.g. 'serial:/dev/ttyUSB0?baud=115200'")
    if not (port.startswith("/") or _COM_PORT.fullmatch(port)) or any(
        c.isspace() or c in "\0#" for c in port
    ):
        raise ValueError("serial port must be an absolute device path (e.g. /dev/ttyUSB0) or COMn")
    baud = DEFAULT_BAUD
    if query:
        try:
            params = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError("serial link options must look like '?baud=115200'") from None
        names = [name for name, _ in params]
        unknown = sorted(set(names) - {"baud"})
        if unknown:
            raise ValueError(f"unknown serial link option {unknown[0]!r}; only 'baud' is known")
        if len(names) > 1:
            raise ValueError("serial link option 'baud' is given twice")
        text = params[0][1]
        if not text.isdecimal() or not MIN_BAUD <= int(text) <= MAX_BAUD:
            raise ValueError(f"baud must be a whole number from {MIN_BAUD} to {MAX_BAUD}")
        baud = int(text)
    return SerialLink(port=port, baud=baud)
