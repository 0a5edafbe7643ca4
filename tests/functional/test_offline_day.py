"""The whole offline day (issue 6): fetch online -> connector stopped -> push over serial (the
simulated serial device on a pty pair) and over LAN (the simulated LAN device on the local
connector the engine serves) -> connector back -> `otatui sync` -> the connector's record of
`otau_in` for each device holds every report once, in order, with the original timestamps (a
device's report: the time the device gave it), as one linear status flow per update.

Everything is real but the devices: the cloud connector, the engine (`Fleet` builds the links
itself from the config: `SerialLink` for `serial:<pty>`, `LanLink` on its own local connector
for `lan`), the store, `Prefetch` and `OutboxSync` (what `otatui fetch` and `otatui sync` run).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from pathlib import Path

from engine_helpers import TOKENS, write_config
from lan_helpers import FAST, running
from relay_helpers import (
    assert_device_times,
    assert_linear,
    device_frames,
    relayed_value,
    update_flow,
)
from serial_helpers import device_on_pty
from wait_helpers import eventually

from otatui.config import Config, load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, LinkChanged, PhaseChanged, TransferFinished
from otatui.engine.export import history_rows, write_json_lines
from otatui.engine.fleet import Fleet
from otatui.engine.prefetch import Prefetch
from otatui.engine.sync import OutboxSync
from otatui.otau.status import Status, StatusReport
from otatui.sim.lan_device import LanDevice
from otatui.store import Store, StoreReader

SERIAL, LAN = ("sensor-1", "a0001"), ("sensor-2", "a0002")
NEW = "2.1.0"


def manifest(name: str) -> str:
    return json.dumps(
        {"version": NEW, "name": "sensor fw", "type": "FILE", "payload": name},
        separators=(",", ":"),
    )


def site(tmp_path: Path, cloud: Connector, serial_path: str) -> Config:
    devices: list[dict[str, object]] = [
        {
            "name": SERIAL[0], "identity": SERIAL[1], "token": TOKENS[SERIAL[1]],
            "protocol": "mqtt", "role": "bridge", "installed_version": "1.0.0",
            "link": f"serial:{serial_path}?baud=115200",
        },
        {
            "name": LAN[0], "identity": LAN[1], "token": TOKENS[LAN[1]],
            "protocol": "http", "role": "bridge", "installed_version": "1.0.0", "link": "lan",
        },
    ]  # fmt: skip
    path = write_config(
        tmp_path / "site.toml",
        cloud,
        devices,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    with path.open("a") as f:  # the laptop's LAN connector, on free loopback ports
        f.write('[lan]\nhost = "127.0.0.1"\nhttp_port = 0\nmqtt_port = 0\n')
    return load_config(path)


def history_export(config: Config) -> list[dict[str, object]]:
    """What `otatui history --json` writes, parsed."""
    out = io.StringIO()
    with StoreReader.open_readonly(config.locations.db_path) as reader:
        write_json_lines(history_rows(reader), out, lambda line: line)
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_the_whole_offline_day(tmp_path: Path) -> None:
    cloud_state = tmp_path / "cloud"
    serial_fw, lan_fw = b"serial sensor firmware " * 3000, b"lan sensor firmware " * 2000
    async with device_on_pty(
        tmp_path / "serial-device", identity=SERIAL[1], installed_version="1.0.0"
    ) as serial_device:
        # -- At the office, online: the updates are offered, `otatui fetch` keeps them.
        cloud = Connector(devices=list(TOKENS.items()), data_dir=cloud_state)
        await cloud.start()
        try:
            cloud.add_content("serial.bin", serial_fw)
            cloud.add_content("lan.bin", lan_fw)
            cloud.set_config_otau(SERIAL[1], manifest("serial.bin"))
            cloud.set_config_otau(LAN[1], manifest("lan.bin"))
            config = site(tmp_path, cloud, serial_device.path)
            store = Store.open(config.locations.db_path)
            try:
                fetched = await Prefetch(config, store).run()
            finally:
                store.close()
            assert [f.ok for f in fetched] == [True, True]
            ports = {"mqtt_port": cloud.ports["mqtt"], "http_port": cloud.ports["http"]}
        finally:
            await cloud.stop()  # -- On site: no internet.

        # -- The engine pushes over serial and LAN, from the fetched manifests and the cache.
        seen: list[Event] = []
        bus = EventBus()
        bus.subscribe(seen.append)
        async with Fleet(config, bus=bus, backlog_age=0.5, offline_after=0.5) as fleet:
            lan_connector = fleet.links.lan_connector
            assert lan_connector is not None
            lan_device = LanDevice(
                base_url=lan_connector.http_url,
                mqtt_url=lan_connector.mqtt_url,
                identity=LAN[1],
                protocol="mqtt",
                installed_version="1.0.0",
                folder=tmp_path / "lan-device",
                step_delay=0.0,
                policy=FAST,
                request_timeout_ms=5_000,
            )
            fleet.start()
            async with running(lan_device):

                def installed(name: str) -> bool:
                    return any(
                        isinstance(e, PhaseChanged)
                        and e.device == name
                        and e.installed_version == NEW
                        for e in seen
                    )

                await eventually(
                    lambda: installed(SERIAL[0]) and installed(LAN[0]), 60, "both sensors updated"
                )
                assert lan_device.installed_version == NEW
            lan_written = [
                (StatusReport.from_json(r.value), r.timestamp)
                for r in lan_connector.reports(LAN[1], "otau_in")
            ]
            assert serial_device.device.installed_version == NEW
        assert fleet.links.lan_connector is None  # stopped with the fleet
        for name in (SERIAL[0], LAN[0]):
            links = {e.link for e in seen if isinstance(e, LinkChanged) and e.device == name}
            assert links == {"serial" if name == SERIAL[0] else "lan"}
        pushed = [
            e.device for e in seen if isinstance(e, TransferFinished) and e.direction == "push"
        ]
        assert SERIAL[0] in pushed

        # What waits in the outbox: everything, marked "not yet sent", with its source.
        with Store.open_readonly(config.locations.db_path) as store:
            waiting = {name: store.pending(name) for name in (SERIAL[0], LAN[0])}
            rows = {
                name: [
                    r
                    for r in store.iter_history(device=name)
                    if r.direction == "out" and r.resource == "otau_in"
                ]
                for name in (SERIAL[0], LAN[0])
            }
        exported = history_export(config)
        for name, link in ((SERIAL[0], "serial"), (LAN[0], "lan")):
            out = [r for r in exported if r["device"] == name and r["direction"] == "out"]
            assert {r["cloud"] for r in out} == {"not yet sent"}  # `otatui history --json`
            assert link in {r["source"] for r in out}
            manifests = [r for r in exported if r["device"] == name and r["direction"] == "in"]
            assert [r["source"] for r in manifests] == ["cache"]
            assert all(r.delivered_at is None for r in rows[name])
            sources = {r.source for r in rows[name]}
            assert link in sources  # the device's own reports, through its link
            assert [i.resource for i in waiting[name]].count("config_otau") == 1  # the ack
            statuses = [r.status for r in rows[name]]
            assert statuses[-1] == "INSTALLED_VERSION" and rows[name][-1].version == NEW
            assert statuses.count("INSTALLED_VERSION") == 2  # the boot report (1.0.0), the new
        # Every report each device made waits with the time the device gave it (serial: its
        # frame's `time`; LAN: the local connector's record of its write).
        made = {
            SERIAL[0]: [
                (relayed_value(report), at)
                for report, at in device_frames(serial_device.trace, NEW)
            ],
            LAN[0]: [
                (relayed_value(report), at)
                for report, at in lan_written
                if report.version == NEW
                and not report.status.is_final
                and report.status is not Status.INSTALL_SUCCESS
            ],
        }
        for name, link in ((SERIAL[0], "serial"), (LAN[0], "lan")):
            assert len(made[name]) >= 5
            assert_device_times([(r.value, r.time, r.source) for r in rows[name]], made[name], link)

        # -- Back online: the connector returns with its state; `otatui sync` sends the backlog.
        await asyncio.sleep(0.6)
        back = Connector(devices=list(TOKENS.items()), data_dir=cloud_state, **ports)
        await back.start()
        try:
            store = Store.open(config.locations.db_path)
            try:
                result = await OutboxSync(config, store, timeout=30).run()
                assert result.ok, result
                assert all(store.count_pending(name) == 0 for name in (SERIAL[0], LAN[0]))
                delivered = {
                    name: [
                        r
                        for r in store.iter_history(device=name)
                        if r.direction == "out" and r.resource == "otau_in"
                    ]
                    for name in (SERIAL[0], LAN[0])
                }
            finally:
                store.close()
            exported = history_export(config)
            assert {r["cloud"] for r in exported if r["direction"] == "out"} == {"sent"}
            for name, identity in (SERIAL, LAN):
                got = back.reports(identity, "otau_in")
                history = delivered[name]
                # Every report once, in order, with the time it was made, sent as a backlog.
                assert [r.value for r in got] == [h.value for h in history]
                assert len({h.id for h in history}) == len(got)
                for report, row in zip(got, history, strict=True):
                    if report.via == "mqtt-batch":  # $resource.batch: microseconds
                        assert abs(report.timestamp - row.time) < 0.001
                    else:  # /onep:v1/stack/record carries whole Unix seconds
                        assert report.via == "http-record"
                        assert report.timestamp == math.floor(row.time)
                    assert row.delivered_at is not None  # history: "sent"
                times = [r.timestamp for r in got]
                assert times == sorted(times)
                # One linear flow per update: the device's steps are INSTALL_STEPs of the push.
                assert_linear(update_flow((r.value for r in got), NEW))
                # The acknowledgement reached the cloud too: the manifest is not offered again.
                resource = back.resource(identity, "config_otau")
                assert resource is not None and resource.acked
        finally:
            await back.stop()
