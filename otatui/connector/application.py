"""The application side of the local connector, as a Python API (what ExoSense does on Murano).

Set a device's ``config_otau`` (or any resource), manage content, read what devices reported
(all of it, or the next report after an index), whitelist/provision devices, see whether a device
is connected or was seen, kick a device's MQTT connection, and arm faults for tests.
:class:`~otatui.connector.server.Connector` is an :class:`Application` with listeners.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .content import DEFAULT_CONTENT_TYPE, Content, ContentStore
from .faults import Faults
from .state import ConnectorState, Device, Report, Resource

CONFIG_OTAU = "config_otau"
OTAU_IN = "otau_in"


class Kicker(Protocol):
    def kick(self, identity: str) -> int: ...

    def is_connected(self, identity: str) -> bool: ...


class Application:
    def __init__(self, state: ConnectorState, content: ContentStore, faults: Faults) -> None:
        self.state = state
        self.content = content
        self.faults = faults
        self.kicker: Kicker | None = None

    # ----- devices ------------------------------------------------------------------------------

    def add_device(self, identity: str, token: str | None = None) -> Device:
        """Whitelist ``identity``; with ``token`` it is provisioned already (no activation)."""
        return self.state.add_device(identity, token)

    def reset_device(self, identity: str) -> None:
        """Forget the device's token so it can (and must) activate again; its MQTT session, if
        any, is closed (its next CONNECT with the old token is refused)."""
        self.state.reset_device(identity)
        self.kick(identity)

    def remove_device(self, identity: str) -> None:
        """Forget the device (whitelisting, token, resources, reports) and close its session."""
        self.state.remove_device(identity)
        self.kick(identity)

    def device(self, identity: str) -> Device:
        return self.state.device(identity)

    def devices(self) -> list[Device]:
        """Every device the connector knows (whitelisted or provisioned)."""
        return self.state.devices()

    # ----- resources ----------------------------------------------------------------------------

    def set_value(self, identity: str, alias: str, value: str) -> Resource:
        return self.state.set_value(identity, alias, value)

    def set_config_otau(self, identity: str, manifest: str | dict[str, Any]) -> Resource:
        """Send a manifest: a dict is serialised compactly, a string is sent byte for byte."""
        text = (
            manifest if isinstance(manifest, str) else json.dumps(manifest, separators=(",", ":"))
        )
        return self.state.set_value(identity, CONFIG_OTAU, text)

    def resource(self, identity: str, alias: str) -> Resource | None:
        return self.state.device(identity).resources.get(alias)

    def reports(self, identity: str, alias: str | None = None) -> list[Report]:
        """Every value the device wrote (to ``alias``), in arrival order, with timestamps."""
        return self.state.reports(identity, alias)

    async def wait_for_report(
        self,
        identity: str,
        alias: str | None = None,
        predicate: Callable[[Report], bool] = lambda _r: True,
        *,
        after: int = 0,
    ) -> Report:
        """The first report (index ≥ ``after``) matching; waits for it (wrap in a timeout)."""
        device = self.state.device(identity)
        while True:
            changed = self.state.change_event(device)
            for report in device.reports[after:]:
                if (alias is None or report.alias == alias) and predicate(report):
                    return report
            await changed.wait()

    def report_count(self, identity: str) -> int:
        """How many values the device wrote so far (to any alias): the index of its next one."""
        return len(self.state.device(identity).reports)

    async def next_report(self, identity: str, index: int) -> Report:
        """The device's report number ``index`` (from 0, every alias, arrival order), waiting for
        it if it has not arrived yet (wrap in a timeout). Reading the reports one index after
        the other sees each of them once, in order, however fast they come."""
        if index < 0:
            raise ValueError("a report index is not negative")
        while True:
            device = self.state.device(identity)  # KeyError if the device was removed meanwhile
            changed = self.state.change_event(device)
            if index < len(device.reports):
                return device.reports[index]
            await changed.wait()

    async def wait_for_ack(self, identity: str, alias: str = CONFIG_OTAU) -> None:
        """Wait until the device acknowledged the app-set value of ``alias`` (wrap in a timeout)."""
        device = self.state.device(identity)
        while True:
            changed = self.state.change_event(device)
            resource = device.resources.get(alias)
            if resource is not None and resource.acked:
                return
            await changed.wait()

    # ----- content ------------------------------------------------------------------------------

    def add_content(
        self,
        content_id: str,
        data: bytes | Path,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        description: str = "",
        tags: dict[str, str] | None = None,
        copy: bool = True,
    ) -> Content:
        """Upload bytes, or a file (``copy=False`` serves it in place without copying)."""
        if isinstance(data, Path):
            return self.content.add_file(
                content_id,
                data,
                content_type=content_type,
                description=description,
                tags=tags,
                copy=copy,
            )
        return self.content.add_bytes(
            content_id, data, content_type=content_type, description=description, tags=tags
        )

    def remove_content(self, content_id: str) -> bool:
        return self.content.remove(content_id)

    def content_item(self, content_id: str) -> Content | None:
        """The content item ``content_id`` if it exists and its file is there."""
        return self.content.get(content_id)

    def contents(self) -> list[Content]:
        return self.content.items()

    # ----- MQTT sessions ------------------------------------------------------------------------

    def kick(self, identity: str) -> int:
        """Close the device's MQTT connection(s) without a DISCONNECT; how many were closed."""
        return self.kicker.kick(identity) if self.kicker is not None else 0

    def is_connected(self, identity: str) -> bool:
        """Whether the device holds an authenticated MQTT connection now."""
        if self.kicker is not None and self.kicker.is_connected(identity):
            return True
        return self.state.presence.in_session(identity)

    # ----- presence -----------------------------------------------------------------------------

    def last_seen(self, identity: str) -> float | None:
        """When the device last authenticated (any HTTP request, an MQTT CONNECT) or activated,
        in the connector's clock (Unix seconds); None if not since this connector started."""
        return self.state.presence.last_seen(identity)

    def seen_since(self, identity: str, since: float) -> bool:
        """Whether the device is connected over MQTT now or reached the connector at ``since``
        or later (HTTP has no connection to watch: a request is the sign of life)."""
        if self.is_connected(identity):
            return True
        seen = self.state.presence.last_seen(identity)
        return seen is not None and seen >= since

    def presence_event(self, identity: str) -> asyncio.Event:
        """An event set at the device's next sign of life or MQTT connect/disconnect. Take it
        before checking :meth:`is_connected` / :meth:`seen_since`, then wait on it."""
        return self.state.presence.event(identity)

    def change_event(self, identity: str) -> asyncio.Event:
        """An event set at the device's next write or app-side change. Take it before reading
        :meth:`reports`, then wait on it."""
        return self.state.change_event(self.state.device(identity))
