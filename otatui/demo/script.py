"""The demo's story: which devices the site has, what the application side offers them and when,
and the final status each scripted update must reach.

Everything here is data; `site.py` turns it into a running site and `player.py` plays it.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTALLED = "INSTALLED_VERSION"


@dataclass(frozen=True, slots=True)
class PayloadFile:
    """A payload file of the demo: served by the connector (content) or by an external host."""

    name: str
    size: int
    external: bool = False  # served by the demo's "vendor" web server, not the connector


@dataclass(frozen=True, slots=True)
class Offer:
    """The application side writes a manifest to the device's `config_otau` at `at` seconds."""

    at: float
    version: str
    files: tuple[PayloadFile, ...] = ()
    name: str = "firmware"
    description: str = ""
    malformed: bool = False  # write a broken manifest instead (the device must say TEST_ERROR)
    drop_download_after: int | None = None  # the connector cuts the download this many times...
    drops: int = 0  # ... after this many bytes, so the transfer has to resume


@dataclass(frozen=True, slots=True)
class DemoDevice:
    name: str
    identity: str
    protocol: str  # "mqtt" | "http"
    role: str  # "agent" | "bridge" | "monitor"
    installed_version: str = "1.0.0"
    install: str = "ok"  # agent install hook: "ok" | "fail"
    link: str = ""  # bridge: "serial" | "lan"
    apply: str = "auto"
    refused: bool = False  # configured with a token the connector does not know
    offers: tuple[Offer, ...] = ()
    expect: tuple[str, str] | None = None  # (version, final status) the update must reach
    note: str = ""  # what the device shows in the demo
    simulated: bool = False  # a simulated device of its own (monitor target, bridged device)


FIRMWARE = PayloadFile("gateway-2.1.0.bin", 3 * 1024 * 1024, external=True)
NOTES = PayloadFile("release-notes.txt", 2_000)
VENDOR = PayloadFile("modem-fw-7.4.bin", 512 * 1024, external=True)
PUMP = PayloadFile("pump-2.1.0.bin", 1536 * 1024)
VALVE = PayloadFile("valve-3.0.0.bin", 768 * 1024)
METER = PayloadFile("meter-1.4.0.bin", 6 * 1024 * 1024)
CHILLER = PayloadFile("chiller-5.2.0.bin", 1024 * 1024)
SENSOR = PayloadFile("sensor-2.1.0.bin", 96 * 1024)

DEVICES: tuple[DemoDevice, ...] = (
    DemoDevice(
        "gateway-01",
        "demo-gw-01",
        "mqtt",
        "agent",
        offers=(Offer(1.0, "2.1.0", (FIRMWARE, NOTES, VENDOR), "gateway firmware"),),
        expect=("2.1.0", INSTALLED),
        note="MQTT agent: files from the vendor's host and the connector's content area",
    ),
    DemoDevice(
        "pump-07",
        "demo-pump-07",
        "http",
        "agent",
        offers=(Offer(2.0, "2.1.0", (PUMP,), "pump controller"),),
        expect=("2.1.0", INSTALLED),
        note="HTTP long-poll agent",
    ),
    DemoDevice(
        "valve-12",
        "demo-valve-12",
        "mqtt",
        "agent",
        install="fail",
        offers=(Offer(3.0, "3.0.0", (VALVE,), "valve actuator"),),
        expect=("3.0.0", "INSTALL_ERROR"),
        note="its install hook fails",
    ),
    DemoDevice(
        "meter-03",
        "demo-meter-03",
        "http",
        "agent",
        offers=(
            Offer(
                6.0,
                "1.4.0",
                (METER,),
                "meter firmware",
                drop_download_after=1024 * 1024,
                drops=2,
            ),
        ),
        expect=("1.4.0", INSTALLED),
        note="its download is cut twice and resumes",
    ),
    DemoDevice(
        "hvac-04",
        "demo-hvac-04",
        "mqtt",
        "agent",
        installed_version="4.2.0",
        offers=(Offer(0.5, "4.2.0", (), "hvac controller"),),
        expect=("4.2.0", INSTALLED),
        note="offered the version it already has",
    ),
    DemoDevice(
        "boiler-05",
        "demo-boiler-05",
        "http",
        "agent",
        offers=(Offer(4.0, "9.9.9", (), "boiler", malformed=True),),
        expect=("9.9.9", "TEST_ERROR"),
        note="offered a malformed manifest",
    ),
    DemoDevice(
        "chiller-02",
        "demo-chiller-02",
        "http",
        "monitor",
        installed_version="5.1.0",
        offers=(Offer(5.0, "5.2.0", (CHILLER,), "chiller"),),
        expect=("5.2.0", INSTALLED),
        note="watched only: a device updating itself",
        simulated=True,
    ),
    DemoDevice(
        "sensor-s1",
        "demo-sensor-s1",
        "mqtt",
        "bridge",
        link="serial",
        offers=(Offer(7.0, "2.1.0", (SENSOR,), "sensor firmware"),),
        expect=("2.1.0", INSTALLED),
        note="offline sensor on a serial cable",
        simulated=True,
    ),
    DemoDevice(
        "sensor-l2",
        "demo-sensor-l2",
        "http",
        "bridge",
        link="lan",
        offers=(Offer(8.0, "2.1.0", (SENSOR,), "sensor firmware"),),
        expect=("2.1.0", INSTALLED),
        note="offline sensor on the plant LAN",
        simulated=True,
    ),
    DemoDevice(
        "press-13",
        "demo-press-13",
        "mqtt",
        "agent",
        installed_version="3.2.0",
        apply="confirm",
        offers=(Offer(9.0, "3.3.0", (PayloadFile("press-3.3.0.bin", 256 * 1024),), "press"),),
        note="waits for the technician to apply its update (a, then y)",
    ),
    DemoDevice(
        "lamp-10",
        "demo-lamp-10",
        "mqtt",
        "agent",
        installed_version="1.2.0",
        note="up to date, nothing offered",
    ),
    DemoDevice(
        "kiosk-09",
        "demo-kiosk-09",
        "mqtt",
        "agent",
        refused=True,
        note="configured with a token the connector refuses",
    ),
    DemoDevice(
        "fan-11",
        "demo-fan-11",
        "http",
        "agent",
        installed_version="1.1.0",
        note="up to date, nothing offered",
    ),
)


def scripted(devices: tuple[DemoDevice, ...] = DEVICES) -> dict[str, tuple[str, str]]:
    """Device identity -> the (version, final status) its scripted update must reach."""
    return {d.identity: d.expect for d in devices if d.expect is not None}
