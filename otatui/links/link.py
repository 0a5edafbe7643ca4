"""The link protocol: how a downloaded package reaches the device and how its result comes back.

A link is one class behind one protocol, like smpclient's transports: `local` runs the install
hook on this machine (agent role), `serial` and `lan` push to an offline device (bridge role).
`install()` is an async generator of `InstallEvent`s that ends with exactly one `Finished`.
Cancelling the iteration (task cancellation) aborts the install on the device as far as the link
allows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from otatui.otau.manifest import Manifest
from otatui.otau.status import StatusReport


@dataclass(frozen=True, slots=True)
class InstallRequest:
    manifest: Manifest
    files: tuple[Path, ...]  # the payload files, in manifest order, with their safe names
    workdir: Path  # a fresh folder for this install (the files are inside it)


@dataclass(frozen=True, slots=True)
class Step:
    """A progress line of the installer (becomes a rate-limited INSTALL_STEP)."""

    message: str
    stream: str = "stdout"


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """A bridged device's own `otau_in` report (the engine relays it: `otatui.engine.relay`).

    `time`: when the device says it made the report (Unix seconds), if the link knows: the
    serial `otau_in` frame's `time`, the local connector's record of a LAN device's write. The
    engine keeps it when it is plausible, else the time the report reached it.
    """

    report: StatusReport
    time: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The install ended: ok, or failed with a one-line message."""

    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class Pushed:
    """Bytes of one payload file pushed to the device so far (the link's transfer progress)."""

    file: str
    index: int  # position in the manifest, from 0
    count: int  # number of files in this push
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The local link to the device changed state; `detail` says why in plain words.

    `state` is one of LINK_STATES: "opening" (port/listener being opened), "waiting" (for the
    device to answer or connect), "connected", "transferring", "installing", "closed" (ended
    normally), "lost" (the device stopped answering or the port went away).
    """

    state: str
    detail: str = ""


LINK_STATES = ("opening", "waiting", "connected", "transferring", "installing", "closed", "lost")

InstallEvent = Step | DeviceReport | Pushed | LinkStatus | Finished


@runtime_checkable
class Link(Protocol):
    @property
    def source(self) -> str:
        """History label of what comes through this link: "local", "serial", "lan"."""
        ...

    def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]: ...
