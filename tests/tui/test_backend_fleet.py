"""FleetBackend over the real engine and the local connector (loopback only), and the app on it."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otatui.config import load_config
from otatui.connector import Connector
from otatui.otau.payload import parse_payload_item
from otatui.tui.app import OtaApp
from otatui.tui.backend import Backend, BackendError, FleetBackend
from otatui.tui.records import Category
from otatui.tui.screens.fleet import FleetScreen
from otatui.tui.state import FleetState

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
HOOK = "import sys; print('flashing', flush=True)"


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    c = Connector(devices=[("a0001", TOKEN)])
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def config_file(tmp_path: Path, connector: Connector) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        "\n".join(
            [
                'site = "test plant"',
                "[connector]",
                f'url = "{connector.http_url}"',
                f'mqtt_url = "{connector.mqtt_url}"',
                "insecure = true",
                "[paths]",
                f'data_dir = "{tmp_path / "data"}"',
                f'cache_dir = "{tmp_path / "cache"}"',
                "[limits]",
                "progress_interval = 0.2",
                "[keys]",
                '"fleet.filter" = "ctrl+f"',
                "[[devices]]",
                'name = "pump-1"',
                'identity = "a0001"',
                f'token = "{TOKEN}"',
                'protocol = "mqtt"',
                'role = "agent"',
                'installed_version = "1.0.0"',
                f"install_command = {json.dumps([sys.executable, '-c', HOOK])}",
                "",
            ]
        )
    )
    return path


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_the_backend_runs_the_engine_and_feeds_the_state(
    tmp_path: Path, connector: Connector
) -> None:
    connector.add_content("fw.bin", b"firmware 2.0.0")
    config = load_config(config_file(tmp_path, connector))
    backend = FleetBackend(config)
    assert isinstance(backend, Backend)
    assert backend.title == "test plant"
    state = FleetState(backend.devices, clock=backend.now)
    await backend.start()
    try:

        def drain() -> bool:
            state.apply_all(backend.events.drain())
            return False

        await wait_for(lambda: drain() or state.devices["pump-1"].connection == "connected")
        manifest = {"version": "2.0.0", "name": "fw", "type": "FILE", "payload": "fw.bin"}
        connector.set_config_otau("a0001", json.dumps(manifest))
        d = state.devices["pump-1"]
        await wait_for(lambda: drain() or d.installed_version == "2.0.0")
        assert d.category is Category.UP_TO_DATE
        assert any(line.line == "flashing" for line in d.output)
        assert any(t.file == "fw.bin" and t.outcome == "done" for t in state.finished)
        assert state.manifests["2.0.0"].installed_on == {"pump-1"}
        await wait_for(lambda: drain() or d.last_status_sent is True)

        item = parse_payload_item("fw.bin")
        cached = backend.cached("pump-1", item)
        assert cached is not None and cached.size == len(b"firmware 2.0.0")

        listing = await backend.content_list()
        assert [e.content_id for e in listing] == ["fw.bin"]
        assert listing[0].info is not None and listing[0].info.size == len(b"firmware 2.0.0")

        assert backend.stored_history().rows == []  # a new data dir: all of it came as events

        out = tmp_path / "history.csv"
        count = await backend.export_history(out, "csv")
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
        assert count == len(rows) > 0
        assert TOKEN not in out.read_text()
        count = await backend.export_history(tmp_path / "h.jsonl", "json", device="pump-1")
        assert count == len((tmp_path / "h.jsonl").read_text().splitlines())

        results = await backend.prefetch(["pump-1"])
        assert results[0].ok and results[0].files[0].state.value == "cached"

        with pytest.raises(BackendError, match="no running update session"):
            backend.cancel("nobody")
        with pytest.raises(BackendError, match="cannot write"):
            await backend.export_history(tmp_path / "missing" / "x.csv", "csv")
        with pytest.raises(BackendError, match="no update is waiting"):
            backend.apply("pump-1")
    finally:
        await backend.stop()

    # the next start: the past comes from the store, read before any session ran
    again = FleetBackend(config, history_rows=1)  # only the newest row, plus the latest of each
    began = time.time()
    await again.start()
    try:
        stored = again.stored_history()
        assert any(r.status == "INSTALLED_VERSION" and r.version == "2.0.0" for r in stored.rows)
        assert all(r.time < began for r in stored.rows)
        fresh = FleetState(again.devices)
        fresh.load_history(stored.rows, stored.outbox)
        assert fresh.devices["pump-1"].installed_version == "2.0.0"
        assert fresh.manifests["2.0.0"].installed_on == {"pump-1"}
        assert fresh.devices["pump-1"].offered is not None  # the offer, older than the newest row
        assert fresh.devices["pump-1"].last_status == "INSTALLED_VERSION"
    finally:
        await again.stop()


async def test_the_app_runs_on_the_engine_with_the_config_keys(
    tmp_path: Path, connector: Connector
) -> None:
    config = load_config(config_file(tmp_path, connector))
    backend = FleetBackend(config)
    app = OtaApp(backend, keys=config.keys)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.state.devices["pump-1"].connection == "connected")
        await pilot.pause(0.3)
        assert isinstance(app.screen, FleetScreen)
        assert app.keys == {"fleet.filter": "ctrl+f"}
        assert app.start_error == ""
        assert backend.running
    assert not backend.running  # quitting the app stopped the engine


async def test_a_second_engine_on_the_same_data_is_refused_in_one_line(
    tmp_path: Path, connector: Connector
) -> None:
    config = load_config(config_file(tmp_path, connector))
    first = FleetBackend(config)
    await first.start()
    try:
        second = FleetBackend(config)
        app = OtaApp(second)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.start_error and "\n" not in app.start_error
            assert TOKEN not in app.start_error
            assert isinstance(app.screen, FleetScreen)  # the configured devices are still shown
            d = app.state.devices["pump-1"]
            assert d.why(0).startswith("stopped: the engine did not start: ")
            assert d.category.value == "needs attention"
        assert not second.running
    finally:
        await first.stop()
