"""Store-and-forward with a scripted link: fetch online, connector down, the bridge works from
the fetched manifest and the cache, the outbox keeps the acknowledgement and every report with
their original times, and when the connector is back the backlog drains by itself while the
cloud's delivery of the same manifest is acknowledged only (no restart). Also: `otatui sync`
refuses to run while the engine holds the data dir."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_helpers import TOKENS, write_config
from relay_helpers import assert_linear, update_flow
from test_engine_bridge import ScriptedLink, device_flow
from wait_helpers import eventually

from otatui.config import Config, load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus, ManifestReceived, PhaseChanged
from otatui.engine.fleet import Fleet
from otatui.engine.prefetch import Prefetch
from otatui.engine.sync import OutboxSync
from otatui.store import FetchedManifest, Store
from otatui.store.lock import DataDirBusy

MANIFEST = json.dumps(
    {"version": "2.1.0", "name": "s", "type": "FILE", "payload": "sensor.bin"},
    separators=(",", ":"),
)


def site(tmp_path: Path, connector: Connector, protocol: str = "mqtt") -> Config:
    device = {
        "name": "sensor-1", "identity": "a0001", "token": TOKENS["a0001"], "protocol": protocol,
        "role": "bridge", "installed_version": "1.0.0", "link": "serial:/dev/ttyUSB0",
    }  # fmt: skip
    path = write_config(
        tmp_path / "site.toml",
        connector,
        [device],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    return load_config(path)


async def prefetch(config: Config) -> FetchedManifest | None:
    """`otatui fetch`: the manifest and files kept for sensor-1 (the fetch must succeed)."""
    store = Store.open(config.locations.db_path)
    try:
        results = await Prefetch(config, store).run()
        assert results[0].ok, results
        return store.get_fetched("sensor-1")
    finally:
        store.close()


def bridge_fleet(config: Config, link: ScriptedLink, bus: EventBus, timeout_ms: int) -> Fleet:
    """The engine with the scripted link, quick to call the connector unreachable."""
    return Fleet(
        config,
        bus=bus,
        link_factory=lambda d: link,
        request_timeout_ms=timeout_ms,
        backlog_age=0.5,
        offline_after=0.3,
    )


def installed(seen: list[Event], version: str) -> bool:
    return any(isinstance(e, PhaseChanged) and e.installed_version == version for e in seen)


async def test_a_bridge_works_offline_from_the_fetched_manifest_and_forwards_later(
    tmp_path: Path,
) -> None:
    state = tmp_path / "connector"
    connector = Connector(devices=list(TOKENS.items()), data_dir=state)
    await connector.start()
    try:
        connector.add_content("sensor.bin", b"sensor firmware " * 500)
        connector.set_config_otau("a0001", MANIFEST)
        config = site(tmp_path, connector)
        # 1. Online: fetch keeps the manifest and verifies its (unpinned) file into the cache.
        fetched = await prefetch(config)
        assert fetched is not None and fetched.raw == MANIFEST
        assert fetched.files[0] is not None
        ports = connector.ports["mqtt"], connector.ports["http"]
    finally:
        await connector.stop()

    # 2. On site, the connector unreachable: the push runs from the fetched manifest and cache.
    link = ScriptedLink(device_flow)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    async with bridge_fleet(config, link, bus, 5_000) as fleet:
        assert fleet.downloader is not None
        fleet.downloader.reuse_unpinned_s = 0  # the fetch is "old": only its pin makes it usable
        fleet.start()
        # `otatui sync` must not send the same outbox at the same time.
        reader = Store.open(config.locations.db_path)
        try:
            with pytest.raises(DataDirBusy, match="otatui run"):
                await OutboxSync(config, reader, timeout=5).run()
        finally:
            reader.close()
        await eventually(lambda: installed(seen, "2.1.0"))
    assert len(link.requests) == 1
    assert [e.source for e in seen if isinstance(e, ManifestReceived)] == ["cache"]
    with Store.open_readonly(config.locations.db_path) as store:
        backlog = store.pending("sensor-1")
        rows = list(store.iter_history(device="sensor-1"))
        used = store.get_fetched("sensor-1")
    assert used is not None and used.pending_settlement
    assert [r.source for r in rows if r.direction == "in"] == ["cache"]
    # The boot report, then the acknowledgement before the reports it led to, all waiting.
    assert [i.resource for i in backlog][:2] == ["otau_in", "config_otau"]
    assert backlog[1].value == MANIFEST
    assert all(i.resource == "otau_in" for i in backlog[2:])
    assert json.loads(backlog[-1].value)["status"] == "INSTALLED_VERSION"
    times = [i.produced_at for i in backlog]
    assert times == sorted(times)
    out_rows = [r for r in rows if r.direction == "out"]
    assert all(r.delivered_at is None for r in out_rows)  # history: "not yet sent"

    # 3. The connector is back (same state: the manifest is still unacknowledged there).
    await asyncio.sleep(1.0)  # the backlog is older than `backlog_age`
    back = Connector(
        devices=list(TOKENS.items()), data_dir=state, mqtt_port=ports[0], http_port=ports[1]
    )
    await back.start()
    try:
        assert not back.resource("a0001", "config_otau").acked  # type: ignore[union-attr]
        seen.clear()
        async with bridge_fleet(config, link, bus, 5_000) as fleet:
            fleet.start()
            # The offline reports, and the boot report of this start.
            expected = sum(1 for i in backlog if i.resource == "otau_in") + 1

            await eventually(lambda: len(back.reports("a0001", "otau_in")) >= expected)
            await eventually(lambda: back.resource("a0001", "config_otau").acked)  # type: ignore[union-attr]
            await asyncio.sleep(1.5)  # a restarted update would show up now
        assert len(link.requests) == 1  # not pushed again
        got = back.reports("a0001", "otau_in")
        with Store.open_readonly(config.locations.db_path) as store:
            assert store.count_pending("sensor-1") == 0
            history = [
                r
                for r in store.iter_history(device="sensor-1")
                if r.direction == "out" and r.resource == "otau_in"
            ]
        # Every report once, in order; the backlog with the time each report was made.
        assert [r.value for r in got] == [h.value for h in history]
        for report, row in zip(got[:-1], history[:-1], strict=True):
            assert abs(report.timestamp - row.time) < 0.001
        offline = [i for i in backlog if i.resource == "otau_in"]
        assert all(r.via == "mqtt-batch" for r in got[: len(offline)])
        assert json.loads(got[-1].value) == {
            "version": "2.1.0", "status": "INSTALLED_VERSION", "message": "",
        }  # fmt: skip
        # One linear flow: our INIT, the device's as an INSTALL_STEP during the push.
        assert_linear(update_flow((r.value for r in got), "2.1.0"))
        assert sum(1 for r in got if json.loads(r.value)["status"] == "INIT") == 1
        assert any(json.loads(r.value)["message"] == "device INIT: manifest accepted" for r in got)
        # The queued acknowledgement reached the cloud with its original time.
        acks = [r for r in back.reports("a0001", "config_otau") if r.value == MANIFEST]
        assert acks and abs(acks[0].timestamp - backlog[1].produced_at) < 0.001
    finally:
        await back.stop()


async def test_the_running_engine_forwards_by_itself_when_the_connector_returns(
    tmp_path: Path,
) -> None:
    """Same as above but over HTTP and with ONE engine run: offline work, then the connector
    comes back while the engine runs; the outbox drains with no command, the manifest is not
    worked again."""
    state = tmp_path / "connector"
    connector = Connector(devices=list(TOKENS.items()), data_dir=state)
    await connector.start()
    try:
        connector.add_content("sensor.bin", b"sensor firmware " * 500)
        connector.set_config_otau("a0001", MANIFEST)
        config = site(tmp_path, connector, "http")
        await prefetch(config)
        ports = connector.ports["mqtt"], connector.ports["http"]
    finally:
        await connector.stop()

    link = ScriptedLink(device_flow)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    async with bridge_fleet(config, link, bus, 2_000) as fleet:
        fleet.start()
        await eventually(lambda: installed(seen, "2.1.0"))
        with Store.open_readonly(config.locations.db_path) as reader:
            waiting = reader.count_pending("sensor-1")
        assert waiting > 10
        await asyncio.sleep(0.6)  # older than backlog_age: sent as a timestamped backlog
        back = Connector(
            devices=list(TOKENS.items()), data_dir=state, mqtt_port=ports[0], http_port=ports[1]
        )
        await back.start()
        try:
            await eventually(
                lambda: (
                    len([r for r in back.reports("a0001") if r.alias == "otau_in"]) >= waiting - 1
                ),
                60,
            )
            await eventually(lambda: back.resource("a0001", "config_otau").acked)  # type: ignore[union-attr]
            await asyncio.sleep(1.5)  # a restarted update would show up now
            got = back.reports("a0001", "otau_in")
        finally:
            await back.stop()
    assert len(link.requests) == 1
    with Store.open_readonly(config.locations.db_path) as reader:
        assert reader.count_pending("sensor-1") == 0
        history = [
            r
            for r in reader.iter_history(device="sensor-1")
            if r.direction == "out" and r.resource == "otau_in"
        ]
    assert [r.value for r in got] == [h.value for h in history]  # once each, in order
    for report, row in zip(got, history, strict=True):
        assert report.via == "http-record" and report.timestamp == int(row.time)


async def test_fetch_keeps_the_offered_manifest_and_forgets_a_withdrawn_one(
    tmp_path: Path,
) -> None:
    async with Connector(devices=list(TOKENS.items())) as connector:
        connector.add_content("sensor.bin", b"sensor firmware")
        config = site(tmp_path, connector)
        store = Store.open(config.locations.db_path)
        try:
            connector.set_config_otau("a0001", MANIFEST)
            assert (await Prefetch(config, store).run())[0].ok
            kept = store.get_fetched("sensor-1")
            assert kept is not None and kept.raw == MANIFEST and kept.version == "2.1.0"
            assert kept.files[0] is not None and len(kept.files[0]) == 64
            # An invalid offer replaces it: nothing is kept (offline it must not be used).
            connector.set_value("a0001", "config_otau", '{"version":"3.0.0"}')
            assert not (await Prefetch(config, store).run())[0].ok
            assert store.get_fetched("sensor-1") is None
            connector.set_config_otau("a0001", MANIFEST)
            await Prefetch(config, store).run()
            assert store.get_fetched("sensor-1") is not None
            connector.set_value("a0001", "config_otau", "")  # withdrawn
            result = (await Prefetch(config, store).run())[0]
            assert result.ok and not result.offered
            assert store.get_fetched("sensor-1") is None
        finally:
            store.close()
