"""The frozen app's sample site: a dozen devices in every state, their stored past (history
rows) and their present (engine events), all on a fixed clock (`FROZEN_NOW`).

MQTT and HTTP agents, a monitor, bridges over serial and LAN, one whose install failed, one
downloading, one installing, one offline with a retry countdown, one whose credentials were
refused, one waiting for the technician to apply, one offered an invalid manifest.
"""

from __future__ import annotations

import json

from otatui.engine.events import (
    AwaitingApply,
    ConnectionChanged,
    Event,
    InstallOutput,
    LinkChanged,
    PhaseChanged,
    ReportObserved,
    TransferFinished,
    TransferProgress,
)
from otatui.otau.status import Status, StatusReport
from otatui.store import Direction, HistoryRow
from otatui.tui.backend import StoredHistory
from otatui.tui.records import DeviceInfo

FROZEN_NOW = 1_785_000_000.0
"""2026-07-25 17:20:00 UTC: the sample's "now"."""
SITE = "acme-plant"

PUMP_BIN_SHA = "9f2c4e61d0b87a35c1e0f4d2b6a8c3e5f7091a2b3c4d5e6f708192a3b4c5d6e7"
PUMP_V2 = "2.1.0"
GW_V = "1.4.0"
SENSOR_V = "3.0.2"


def link_changed(device: str, at: float, link: str, state: str, detail: str) -> Event:
    return LinkChanged(device=device, time=at, link=link, state=state, detail=detail)


def _awaiting(device: str, at: float, version: str) -> Event:
    return AwaitingApply(device=device, time=at, version=version)


DEVICES: tuple[DeviceInfo, ...] = (
    DeviceInfo("gw-main", "a0001", "agent", "mqtt", None, GW_V),
    DeviceInfo("pump-7", "a0007", "agent", "mqtt", None, "2.0.3"),
    DeviceInfo("pump-8", "a0008", "agent", "http", None, "2.0.3"),
    DeviceInfo("valve-2", "a0102", "agent", "http", None, "1.1.0"),
    DeviceInfo(
        "sensor-1",
        "s0001",
        "bridge",
        "mqtt",
        "serial:/dev/ttyUSB0?baud=115200",
        "3.0.1",
        apply="confirm",
    ),
    DeviceInfo("sensor-2", "s0002", "bridge", "http", "lan", "3.0.1"),
    DeviceInfo("meter-3", "m0003", "agent", "mqtt", None, "0.9.4"),
    DeviceInfo("tank-4", "t0004", "monitor", "http", None, None),
    DeviceInfo("hvac-1", "h0001", "agent", "mqtt", None, PUMP_V2),
    DeviceInfo("light-9", "l0009", "agent", "http", None, "1.0.0"),
    DeviceInfo("door-5", "d0005", "agent", "mqtt", None, "4.2.0"),
    DeviceInfo("relay-6", "r0006", "bridge", "http", "serial:/dev/ttyUSB1?baud=57600", "0.3.0"),
)


def _manifest_json(version: str, name: str, kind: str, description: str, items: list[str]) -> str:

    payload: object = items[0] if kind == "FILE" else items
    return json.dumps(
        {
            "version": version,
            "name": name,
            "type": kind,
            "description": description,
            "payload": payload,
        },
        separators=(",", ":"),
    )


PUMP_ITEMS = [
    f"pump-fw-2.1.0.bin#sha256={PUMP_BIN_SHA}",
    "https://downloads.example.com/pump/2.1.0/assets.tar.gz",
]
PUMP_MANIFEST = _manifest_json(
    PUMP_V2, "Pump controller", "URL_LIST", "Pressure loop fix; faster start-up", PUMP_ITEMS
)
GW_MANIFEST = _manifest_json(GW_V, "Gateway agent", "FILE", "Bridge support", ["gw-1.4.0.tar"])
SENSOR_ITEMS = ["sensor-3.0.2.hex"]
SENSOR_MANIFEST = _manifest_json(
    SENSOR_V, "RS-485 sensor", "FILE", "Calibration table v7", SENSOR_ITEMS
)
BAD_MANIFEST = '{"version":"0.4.0","name":"relay","type":"FILE","payload":"ftp://x/r.bin"}'


class _Rows:
    """Builds history rows with increasing ids."""

    def __init__(self) -> None:
        self.rows: list[HistoryRow] = []
        self.outbox: dict[int, int] = {}

    def offer(
        self,
        device: str,
        at: float,
        raw: str,
        version: str,
        source: str = "mqtt",
        note: str | None = None,
    ) -> None:
        self._add(device, at, "in", "config_otau", raw, version, None, source, note, None)

    def report(
        self,
        device: str,
        at: float,
        version: str,
        status: Status,
        message: str = "",
        source: str = "mqtt",
        sent: bool = True,
    ) -> None:
        raw = StatusReport(version, status, message).to_json()
        row_id = self._add(
            device,
            at,
            "out",
            "otau_in",
            raw,
            version,
            status.value,
            source,
            None,
            at + 0.2 if sent else None,
        )
        if not sent:
            self.outbox[1000 + row_id] = row_id

    def _add(
        self,
        device: str,
        at: float,
        direction: Direction,
        resource: str,
        value: str,
        version: str | None,
        status: str | None,
        source: str,
        note: str | None,
        delivered: float | None,
    ) -> int:
        row_id = len(self.rows) + 1
        self.rows.append(
            HistoryRow(
                row_id,
                at,
                device,
                direction,
                resource,
                value,
                version,
                status,
                source,
                note,
                delivered,
            )
        )
        return row_id


def sample_history(now: float = FROZEN_NOW) -> StoredHistory:
    """The stored past of the sample fleet (oldest first)."""
    r = _Rows()
    t = now - 3 * 86400
    r.report("gw-main", t, GW_V, Status.INSTALLED_VERSION)
    r.offer("gw-main", t - 3600, GW_MANIFEST, GW_V)
    for name, proto in (("hvac-1", "mqtt"), ("pump-7", "mqtt"), ("pump-8", "http")):
        r.offer(name, now - 3600 - len(name), PUMP_MANIFEST, PUMP_V2, proto)
    for status, msg in (
        (Status.INIT, ""),
        (Status.TEST, ""),
        (Status.TEST_SUCCESS, "ready"),
        (Status.DOWNLOAD, ""),
        (Status.DOWNLOAD_SUCCESS, ""),
        (Status.INSTALL, ""),
        (Status.INSTALL_SUCCESS, ""),
        (Status.INSTALLED_VERSION, ""),
    ):
        r.report("hvac-1", now - 3500 + len(r.rows), PUMP_V2, status, msg)
    for status, msg in (
        (Status.INIT, ""),
        (Status.TEST, ""),
        (Status.TEST_SUCCESS, "ready"),
        (Status.DOWNLOAD, ""),
        (Status.DOWNLOAD_STEP, "file 1 of 2, 40%"),
    ):
        r.report("pump-7", now - 120 + len(r.rows), PUMP_V2, status, msg)
    for status, msg in (
        (Status.INIT, ""),
        (Status.DOWNLOAD_SUCCESS, ""),
        (Status.INSTALL, ""),
        (Status.INSTALL_ERROR, "installer exited with 3: flash write failed"),
    ):
        r.report("pump-8", now - 900 + len(r.rows), PUMP_V2, status, msg, source="http")
    r.offer(
        "valve-2",
        now - 400,
        _manifest_json("1.2.0", "Valve", "FILE", "", ["valve-1.2.0.zip"]),
        "1.2.0",
        "http",
    )
    for status in (Status.INIT, Status.DOWNLOAD_SUCCESS, Status.INSTALL):
        r.report("valve-2", now - 300 + len(r.rows), "1.2.0", status, source="http")
    r.report(
        "valve-2",
        now - 20,
        "1.2.0",
        Status.INSTALL_STEP,
        "writing partition B (3/5)",
        source="http",
    )
    for name, proto in (("sensor-1", "mqtt"), ("sensor-2", "http")):
        r.offer(name, now - 7200, SENSOR_MANIFEST, SENSOR_V, proto)
    for status in (Status.INIT, Status.DOWNLOAD_SUCCESS):
        r.report("sensor-1", now - 600 + len(r.rows), SENSOR_V, status, sent=False)
    for status in (Status.INIT, Status.DOWNLOAD_SUCCESS, Status.INSTALL):
        r.report("sensor-2", now - 200 + len(r.rows), SENSOR_V, status, source="lan", sent=False)
    r.report("meter-3", now - 2 * 86400, "0.9.4", Status.INSTALLED_VERSION)
    r.report("light-9", now - 5 * 86400, "1.0.0", Status.INSTALLED_VERSION, source="http")
    r.offer(
        "door-5",
        now - 30,
        _manifest_json("4.3.0", "Door lock", "FILE", "", ["door-4.3.0.bin"]),
        "4.3.0",
    )
    r.report("door-5", now - 28, "4.3.0", Status.INIT)
    r.report("door-5", now - 27, "4.3.0", Status.TEST)
    r.offer(
        "relay-6",
        now - 1800,
        BAD_MANIFEST,
        "0.4.0",
        "http",
        note='rejected: payload "ftp://x/r.bin" is not an http(s) URL',
    )
    r.report(
        "relay-6",
        now - 1799,
        "0.4.0",
        Status.TEST_ERROR,
        'payload "ftp://x/r.bin" is not an http(s) URL',
        source="http",
    )
    r.rows.sort(key=lambda row: row.time)
    return StoredHistory(r.rows, r.outbox)


def sample_events(now: float = FROZEN_NOW) -> list[Event]:
    """What the engine publishes as the app starts: connections, phases, transfers, output."""
    out: list[Event] = []

    def conn(
        device: str,
        protocol: str,
        state: str = "connected",
        reason: str = "",
        retry_at: float | None = None,
        attempt: int = 0,
        at: float = now - 5,
    ) -> None:
        out.append(
            ConnectionChanged(
                device=device,
                time=at,
                protocol=protocol,
                state=state,
                reason=reason,
                retry_at=retry_at,
                attempt=attempt,
            )
        )

    for d in DEVICES:
        if d.name in ("meter-3", "light-9", "door-5"):
            continue
        conn(d.name, d.protocol, at=now - 3 - len(d.name))
    conn(
        "meter-3",
        "mqtt",
        "backoff",
        "connection refused by 10.0.4.2:8883",
        now + 42,
        5,
        at=now - 18,
    )
    conn(
        "light-9",
        "http",
        "auth_failed",
        "the connector refused the device token (HTTP 401)",
        at=now - 240,
    )
    conn("door-5", "mqtt", at=now - 31)
    out.append(
        PhaseChanged(
            device="door-5",
            time=now - 27,
            phase="testing",
            version="4.3.0",
            installed_version="4.2.0",
        )
    )
    out.append(
        PhaseChanged(
            device="pump-7",
            time=now - 100,
            phase="downloading",
            version=PUMP_V2,
            installed_version="2.0.3",
        )
    )
    out.append(
        TransferProgress(
            device="pump-7",
            time=now - 1,
            file="pump-fw-2.1.0.bin",
            index=0,
            count=2,
            done=3_355_443,
            total=5_592_405,
            rate=262_144.0,
        )
    )
    out.append(
        PhaseChanged(
            device="valve-2",
            time=now - 290,
            phase="installing",
            version="1.2.0",
            installed_version="1.1.0",
        )
    )
    for i, line in enumerate(
        (
            "unpacking valve-1.2.0.zip",
            "verifying signature: ok",
            "writing partition B (1/5)",
            "writing partition B (2/5)",
            "writing partition B (3/5)",
        )
    ):
        out.append(InstallOutput(device="valve-2", time=now - 60 + 10 * i, line=line))
    out.append(
        TransferFinished(
            device="sensor-1",
            time=now - 590,
            file="sensor-3.0.2.hex",
            ok=True,
            size=184_320,
            sha256="5a" * 32,
        )
    )
    out.append(
        link_changed(
            "sensor-1",
            now - 400,
            "serial",
            "connected",
            "/dev/ttyUSB0 at 115200 baud; device answered",
        )
    )
    # the apply gate holds the update in its phase (downloading, every file done) while it waits
    out.append(
        PhaseChanged(
            device="sensor-1",
            time=now - 595,
            phase="downloading",
            version=SENSOR_V,
            installed_version="3.0.1",
        )
    )
    out.append(_awaiting("sensor-1", now - 399, SENSOR_V))
    out.append(
        PhaseChanged(
            device="sensor-2",
            time=now - 190,
            phase="installing",
            version=SENSOR_V,
            installed_version="3.0.1",
        )
    )
    out.append(
        link_changed(
            "sensor-2",
            now - 150,
            "lan",
            "transferring",
            "sensor at 192.168.10.23 fetching its files",
        )
    )
    out.append(
        TransferProgress(
            device="sensor-2",
            time=now - 2,
            file="sensor-3.0.2.hex",
            index=0,
            count=1,
            done=61_440,
            total=184_320,
            rate=8_192.0,
            direction="push",
        )
    )
    out.append(
        TransferFinished(
            device="pump-8",
            time=now - 880,
            file="pump-fw-2.1.0.bin",
            ok=True,
            size=5_592_405,
            sha256=PUMP_BIN_SHA,
        )
    )
    out.append(
        ReportObserved(
            device="tank-4",
            time=now - 700,
            version="5.0.0",
            status="INSTALLED_VERSION",
            source="http",
        )
    )
    # a refused token ends in auth_failed alone (the engine publishes no SessionError for it)
    return out
