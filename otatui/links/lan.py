"""The `lan` link: an offline device on the plant LAN updates from the local connector.

The device talks to the local connector (`otatui.connector`, run by otatui on the laptop or the
gateway) exactly as it would to Murano, over MQTT or HTTP: it activates there, gets its manifest
on `config_otau`, acknowledges it, downloads the files from the connector's content area and
writes its `otau_in` reports. `LanLink.install` drives one push:

1. The identity is whitelisted on the local connector if it is not known there. The device
   activates itself and gets a LOCAL token; a token the local connector already holds for it is
   kept. The link never has the cloud token (its constructor takes none), so it cannot give it to
   the local connector or to the device.
2. The request's files (downloaded and verified by the engine, manifest order) go into the
   content area. Content ids are made from the file name and its sha256
   (`fw.bin` -> `fw-<16 hex>.bin`), so pushing the same file again reuses the item; items are
   tagged `otatui=lan` and stored hard-linked (else copied) under `<content dir>/lan/`. After
   each push, `otatui=lan` items that no device's current `config_otau` names are removed.
3. The manifest is rewritten: every payload item (connector content id or external URL alike)
   becomes `<content id>#sha256=<hex>`. Our payload parser accepts that pin on a content id, so
   the device verifies every byte it downloads; a device that knows no pin still gets the file
   (it is served under the whole item as an id too, `otatui.links.lan_content`). Every other key
   of the manifest is kept as it was, in order; a JSON manifest (no files) is offered byte for
   byte as received.
4. `config_otau` is set for the identity. The link then reports, as `LinkStatus`: waiting for
   the device to connect (an MQTT session, or any authenticated request after the push started:
   HTTP has no connection to watch), connected, waiting for the acknowledgement, acknowledged,
   transferring (the device reported DOWNLOAD), installing (INSTALL), lost (an MQTT session
   dropped, or a timeout after the device had been seen), closed.
5. Every value the device writes is read from the connector's report list by index, so each
   `otau_in` report is seen once, in arrival order, however fast they come. A report of the
   manifest's version is yielded as `DeviceReport`; a report of another version (e.g. the
   device's boot report of its old version) only as a `LinkStatus` line, and an
   INSTALLED_VERSION that comes before the acknowledgement too (a boot report: the device
   has not seen the manifest yet). The push ends with exactly one `Finished`: ok at
   INSTALLED_VERSION of the manifest's version after the acknowledgement; failed at the first
   error status (TEST_ERROR, DOWNLOAD_ERROR, INSTALL_ERROR, INSTALL_ABORTED) with the device's
   message; failed when the device does not connect within `connect_timeout`, does not
   acknowledge within `ack_timeout` of connecting, or sends nothing for `report_timeout` after
   its acknowledgement. Each `DeviceReport` carries the connector's time of the write: the
   device's own timestamp when it wrote a timestamped batch/record, else when the local
   connector received it.

Cancellation and timeouts (the choice made): the OTAU contract gives the application no cancel
message; INSTALL_ABORTED is the device's to write, and what makes a device abort is a different
`config_otau` value ("a new offer replaces the old one"). So when the push ends without the
device's own final status (the install task is cancelled or the generator closed, or a timeout),
the link sets `config_otau` to the empty string, the withdrawing value: a device that has not
fetched the manifest yet never gets it, and a device working on it sees a different value,
aborts with INSTALL_ABORTED (our `UpdateMachine` does) and acknowledges the empty value, which is
no manifest, so nothing starts. The content stays (the next push removes what no manifest names
any more): the device aborts by itself, at a step boundary it chooses, rather than finding its
download cut off under it. Nothing is yielded after a cancel: the engine reports the
cancellation to the cloud itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncGenerator

from otatui.connector import CONFIG_OTAU, OTAU_IN, Connector
from otatui.links.lan_content import LanError, offer_files, prune_content, rewrite_manifest
from otatui.links.link import DeviceReport, Finished, InstallEvent, InstallRequest, LinkStatus
from otatui.otau.status import Status, StatusReport

DEFAULT_CONNECT_TIMEOUT = 300.0
DEFAULT_ACK_TIMEOUT = 60.0
DEFAULT_REPORT_TIMEOUT = 600.0
WITHDRAWN = ""


class LanLink:
    """Pushes updates to one device through the local connector (see the module docstring)."""

    source = "lan"

    def __init__(
        self,
        connector: Connector,
        identity: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT,
    ) -> None:
        if not identity:
            raise ValueError("a LAN link needs the device identity")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("ack_timeout", ack_timeout),
            ("report_timeout", report_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        self.connector = connector
        self.identity = identity
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.report_timeout = report_timeout

    def __repr__(self) -> str:
        return f"<LanLink {self.identity}>"

    @property
    def url(self) -> str:
        """Where the device finds the local connector's HTTP device API."""
        return self._address("http")

    def _address(self, scheme: str) -> str:
        """A listener's URL as a device on the LAN sees it: on a wildcard host (0.0.0.0, ::)
        this machine's name stands for whichever of its addresses the device can reach."""
        port = self.connector.ports.get(scheme)
        if port is None:
            return f"(no {scheme.upper()} listener)"
        host = self.connector.host
        if _is_wildcard(host):
            host = socket.gethostname()
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    async def install(self, request: InstallRequest) -> AsyncGenerator[InstallEvent, None]:
        manifest, connector = request.manifest, self.connector
        identity, version, url = self.identity, manifest.version, self.url
        where = url if "mqtt" not in connector.ports else f"{url} (MQTT {self._address('mqtt')})"
        yield LinkStatus(
            "opening", f"offering {version} to {identity} on the local connector at {where}"
        )
        try:
            self._ensure_device()
            files = await offer_files(connector, request.files, manifest.items)
            text = rewrite_manifest(manifest, [f.payload_item for f in files])
        except (LanError, OSError) as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            yield LinkStatus("closed", f"cannot offer {version} to {identity}")
            yield Finished(False, f"LAN push of {version} to {identity}: {message}")
            return

        index = connector.report_count(identity)
        since = connector.state.clock()
        connector.set_config_otau(identity, text)
        prune_content(connector)
        final = False  # the device wrote its own final status
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.connect_timeout
            phase = "connect"  # -> "ack" -> "report"
            mqtt = False
            yield LinkStatus(
                "waiting", f"waiting for {identity} to connect to the local connector at {url}"
            )
            while True:
                try:
                    changed = connector.change_event(identity)
                    presence = connector.presence_event(identity)
                    reports = connector.device(identity).reports[index:]
                except KeyError:
                    yield LinkStatus("closed", f"{identity} was removed from the local connector")
                    yield Finished(False, f"{identity} was removed from the local connector")
                    return
                now_mqtt = connector.is_connected(identity)
                if phase == "connect" and connector.seen_since(identity, since):
                    phase = "ack"
                    deadline = loop.time() + self.ack_timeout
                    how = "connected to the local connector over MQTT"
                    yield LinkStatus(
                        "connected",
                        f"{identity} {how if now_mqtt else 'reached the local connector'}",
                    )
                    yield LinkStatus(
                        "waiting", f"waiting for {identity} to acknowledge version {version}"
                    )
                elif phase != "connect" and now_mqtt != mqtt:
                    if now_mqtt:
                        yield LinkStatus("connected", f"{identity} connected over MQTT")
                    else:
                        yield LinkStatus(
                            "lost", f"{identity} disconnected from the local connector (MQTT)"
                        )
                mqtt = now_mqtt

                for report in reports:
                    index += 1
                    if report.alias == CONFIG_OTAU:
                        if phase != "report" and report.ack and report.value == text:
                            phase = "report"
                            deadline = loop.time() + self.report_timeout
                            yield LinkStatus(
                                "connected", f"{identity} acknowledged version {version}"
                            )
                        continue
                    if report.alias != OTAU_IN:
                        continue
                    try:
                        status = StatusReport.from_json(report.value)
                    except ValueError as exc:
                        yield LinkStatus(
                            "connected", f"{identity} wrote an otau_in that is not a report: {exc}"
                        )
                        continue
                    if status.version != version or (
                        status.status is Status.INSTALLED_VERSION and phase != "report"
                    ):
                        yield LinkStatus(
                            "connected",
                            f"{identity} reports {status.status.value} {status.version}",
                        )
                        continue
                    if phase == "report":
                        deadline = loop.time() + self.report_timeout
                    yield DeviceReport(status, time=report.timestamp)
                    if status.status.is_error:
                        final = True
                        message = status.message or f"{identity} reported {status.status.value}"
                        yield LinkStatus("closed", f"{identity}: {status.status.value}")
                        yield Finished(False, message)
                        return
                    if status.status is Status.INSTALLED_VERSION:
                        final = True
                        yield LinkStatus("closed", f"{identity} runs {version}")
                        yield Finished(True, f"{identity} installed {version}")
                        return
                    if status.status is Status.DOWNLOAD:
                        yield LinkStatus(
                            "transferring",
                            f"{identity} is downloading from the local connector at {url}",
                        )
                    elif status.status is Status.INSTALL:
                        yield LinkStatus("installing", f"{identity} is installing {version}")

                remaining = deadline - loop.time()
                if remaining <= 0:
                    message = self._timeout_message(phase, version)
                    yield LinkStatus("closed" if phase == "connect" else "lost", message)
                    yield Finished(False, message)
                    return
                await _wait_any(changed, presence, within=remaining)
        finally:
            if not final:
                self._withdraw(text)

    # -- steps ---------------------------------------------------------------------------------

    def _ensure_device(self) -> None:
        """Whitelist the identity for activation; a token already held there is kept."""
        try:
            self.connector.device(self.identity)
        except KeyError:
            self.connector.add_device(self.identity)

    def _withdraw(self, text: str) -> None:
        """Replace our still-current offer with the empty value (see the module docstring)."""
        try:
            resource = self.connector.resource(self.identity, CONFIG_OTAU)
        except KeyError:
            return
        if resource is not None and resource.set_value == text:
            self.connector.set_config_otau(self.identity, WITHDRAWN)

    def _timeout_message(self, phase: str, version: str) -> str:
        if phase == "connect":
            return (
                f"{self.identity} did not connect to the local connector"
                f" within {self.connect_timeout:g} s"
            )
        if phase == "ack":
            return (
                f"{self.identity} did not acknowledge version {version}"
                f" within {self.ack_timeout:g} s"
            )
        return f"{self.identity} sent no report for {self.report_timeout:g} s"


async def _wait_any(first: asyncio.Event, second: asyncio.Event, *, within: float) -> None:
    """Until either event is set or `within` seconds passed."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _is_wildcard(host: str) -> bool:
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
