"""`otatui run --headless` as a real process against the local connector (issue 4's proof):
three devices (MQTT agent, HTTP agent, HTTP monitor); a URL_LIST manifest with connector content
and a pinned external URL reaches INSTALLED_VERSION on both agents with byte-identical files;
then otatui is killed with SIGKILL in the middle of a larger download, restarted, resumes the
download with Range and completes, and no report is lost or duplicated."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from engine_helpers import (
    TOKENS,
    ExternalServer,
    agent,
    sha,
    wait_status,
    write_config,
)
from headless_helpers import Otatui, slow_server

from otatui.connector import Connector


@pytest.mark.slow
async def test_headless_run_updates_agents_and_resumes_after_sigkill(tmp_path: Path) -> None:
    firmware = os.urandom(300_000)
    extra = os.urandom(50_000)
    big = os.urandom(8 * 1024 * 1024)
    (tmp_path / "external").mkdir()
    (tmp_path / "external" / "extra.bin").write_bytes(extra)
    external = ExternalServer(tmp_path / "external")
    connector = Connector(devices=list(TOKENS.items()))
    await connector.start()
    connector.add_content("fw_2.0.0.bin", firmware)
    records = tmp_path / "records"
    monitor = {
        "name": "watcher", "identity": "a0003", "token": TOKENS["a0003"],
        "protocol": "http", "role": "monitor",
    }  # fmt: skip
    cfg = write_config(
        tmp_path / "site.toml",
        connector,
        [
            agent("mqtt-agent", "a0001", "mqtt", records / "mqtt"),
            agent("http-agent", "a0002", "http", records / "http"),
            monitor,
        ],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    otatui = Otatui(cfg, env)
    try:
        await otatui.start()
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION", 60)
        manifest = json.dumps(
            {
                "version": "2.0.0",
                "name": "Firmware 2",
                "description": "main application",
                "type": "URL_LIST",
                "payload": ["fw_2.0.0.bin", external.url("extra.bin") + f"#sha256={sha(extra)}"],
            }
        )
        for identity in ("a0001", "a0002", "a0003"):
            connector.set_config_otau(identity, manifest)
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "2.0.0", "INSTALLED_VERSION", 60)
        for kind in ("mqtt", "http"):
            got = json.loads((records / kind / "2.0.0.json").read_text())
            assert got["files"] == {"fw_2.0.0.bin": sha(firmware), "extra.bin": sha(extra)}
        # The monitor saw the manifest and never wrote anything.
        await otatui.wait_for(lambda e: e["device"] == "watcher" and e["event"] == "manifest")
        assert connector.reports("a0003") == []
        # Nothing in the output holds a token.
        out = json.dumps(otatui.events)
        assert not any(token in out for token in TOKENS.values())

        # A larger download, from a slow external host: kill -9 in the middle of it.
        with slow_server(big) as slow:
            url = f"http://127.0.0.1:{slow.server_address[1]}/big.bin#sha256={sha(big)}"
            second = {"version": "3.0.0", "name": "Big", "type": "FILE", "payload": url}
            connector.set_config_otau("a0001", second)
            await otatui.wait_for(
                lambda e: (
                    e["device"] == "mqtt-agent"
                    and e["event"] == "progress"
                    and int(e["done"]) > 2 * 1024 * 1024
                )  # type: ignore[call-overload]
            )
            assert await otatui.stop(signal.SIGKILL) == -signal.SIGKILL
            restarted = Otatui(cfg, env)
            await restarted.start()
            try:
                await wait_status(connector, "a0001", "3.0.0", "INSTALLED_VERSION", 60)
                got = json.loads((records / "mqtt" / "3.0.0.json").read_text())
                assert got["files"] == {"big.bin": sha(big)}
                resumed = [r for r in slow.ranges if r]
                assert resumed, f"no Range request after the restart: {slow.ranges}"
                assert int(resumed[0].split("=")[1].split("-")[0]) > 0
                assert all("X-Exosite-CIK" not in h for h in slow.headers_seen)
                # No report lost or duplicated: the connector holds exactly the history's
                # reports, once each, in order.
                await asyncio.sleep(0.5)
                assert await restarted.stop() == 0
            finally:
                if restarted.proc and restarted.proc.returncode is None:
                    await restarted.stop(signal.SIGKILL)
        db = sqlite3.connect(tmp_path / "data" / "otatui.db")
        for name, identity in (("mqtt-agent", "a0001"), ("http-agent", "a0002")):
            history = [
                v
                for (v,) in db.execute(
                    "SELECT value FROM history WHERE device=? AND resource='otau_in' "
                    "AND direction='out' ORDER BY id",
                    (name,),
                )
            ]
            sent = [r.value for r in connector.reports(identity, "otau_in")]
            assert sent == history, name
            pending = db.execute("SELECT count(*) FROM outbox WHERE device=?", (name,)).fetchone()
            assert pending == (0,)
        db.close()
    finally:
        if otatui.proc and otatui.proc.returncode is None:
            await otatui.stop(signal.SIGKILL)
        await connector.stop()
        external.close()
