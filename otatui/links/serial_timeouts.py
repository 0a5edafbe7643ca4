"""How long the serial link's host waits at each step (docs/serial-link.md, section 5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SerialTimeouts:
    """How long the host waits at each step (docs/serial-link.md, section 5), in seconds."""

    open: float = 5.0
    hello: float = 2.0
    hello_attempts: int = 5
    echo: float = 5.0
    manifest_attempts: int = 3
    ping_after: float = 5.0
    silence: float = 15.0
    ymodem_start: float = 10.0
    ymodem_block: float = 5.0
    ymodem_retries: int = 6
    cancel: float = 3.0
    push: float = 3600.0
