"""`otatui status`, `history`, `sync` and `fetch` against the local connector.

The commands run in-process (`otatui.cli.main`, output captured) and, for some, as the installed
console script. `main` runs its own event loop, so in these async tests it runs in a thread while
the connector keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from engine_helpers import (
    TOKENS,
    ExternalServer,
    agent,
    sha,
    site_config,
    statuses,
    wait_status,
    write_config,
)

from otatui.cli import main
from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.fleet import Fleet
from otatui.otau.status import Status, StatusReport
from otatui.store import PendingReport, Store

CLI = Path(sys.executable).with_name("otatui")
FINAL_OK = "INSTALLED_VERSION"


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector(devices=list(TOKENS.items())) as c:
        yield c


@pytest.fixture
def external(tmp_path: Path) -> Iterator[ExternalServer]:
    with ExternalServer(tmp_path / "external") as server:
        yield server


class Outputs:
    """Everything the commands printed in a test, to check no token ever appears."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *texts: str) -> None:
        self.texts.extend(texts)

    def assert_no_token(self) -> None:
        assert self.texts
        if os.environ.get("SHOW_CLI_OUTPUT"):
            print("\n".join(self.texts))
        for text in self.texts:
            for token in TOKENS.values():
                assert token not in text


@pytest.fixture
def outputs() -> Iterator[Outputs]:
    out = Outputs()
    yield out
    out.assert_no_token()


def run_cli(
    capsys: pytest.CaptureFixture[str], outputs: Outputs, *argv: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    outputs.add(out, err)
    return code, out, err


async def run_cli_async(
    capsys: pytest.CaptureFixture[str], outputs: Outputs, *argv: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    outputs.add(out, err)
    return code, out, err


async def run_script(outputs: Outputs, *argv: str, within: float = 60) -> tuple[int, str, str]:
    """The installed console script as a subprocess."""
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text_out, text_err = out.decode(), err.decode()
    outputs.add(text_out, text_err)
    assert proc.returncode is not None
    return proc.returncode, text_out, text_err


def monitor(name: str, identity: str) -> dict[str, object]:
    return {"name": name, "identity": identity, "token": TOKENS[identity], "role": "monitor",
            "protocol": "http"}  # fmt: skip


def bridge(name: str, identity: str, protocol: str = "http") -> dict[str, object]:
    return {"name": name, "identity": identity, "token": TOKENS[identity], "role": "bridge",
            "protocol": protocol, "link": "lan", "installed_version": "1.0.0"}  # fmt: skip


# -- status and history ---------------------------------------------------------------------------


async def test_status_and_history_after_an_engine_run(
    tmp_path: Path, connector: Connector, capsys: pytest.CaptureFixture[str], outputs: Outputs
) -> None:
    cfg = site_config(
        tmp_path,
        connector,
        [
            agent("mqtt-agent", "a0001", "mqtt", tmp_path / "rec"),
            agent("http-agent", "a0002", "http", tmp_path / "rec"),
            monitor("watched", "a0003"),
        ],
    )
    config = load_config(cfg)
    # Before any run: the config alone, no store yet.
    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["DEVICE", "ROLE", "LINK"]
    assert [line.split()[0] for line in lines[1:]] == ["mqtt-agent", "http-agent", "watched"]
    assert "1.0.0" in lines[1]

    manifest = {"version": "5.0.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
    async with Fleet(config, request_timeout_ms=5_000) as fleet:
        fleet.start()
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "1.0.0", FINAL_OK)
            connector.set_config_otau(identity, manifest)
        connector.set_config_otau("a0003", {**manifest, "version": "7.0.0", "name": "other"})
        for identity in ("a0001", "a0002"):
            await wait_status(connector, identity, "5.0.0", FINAL_OK)

        store = fleet.store
        assert store is not None
        for _ in range(400):  # the reports confirmed and the monitor's first read recorded
            if not store.count_pending() and store.count_history(device="watched"):
                break
            await asyncio.sleep(0.05)
        # While the engine runs (and holds the store open for writing).
        code, out, err = run_cli(capsys, outputs, "--config", str(cfg), "status", "--json")
        assert code == 0, err

    by_name = {s["name"]: s for s in json.loads(out)}
    assert list(by_name) == ["mqtt-agent", "http-agent", "watched"]
    for name, protocol in (("mqtt-agent", "mqtt"), ("http-agent", "http")):
        s = by_name[name]
        assert s["role"] == "agent" and s["protocol"] == protocol and s["link"] is None
        assert s["installed_version"] == "5.0.0" and s["phase"] == "idle"
        assert (s["offered_version"], s["offered_name"]) == ("5.0.0", "cfg")
        assert (s["last_status"], s["last_status_version"]) == (FINAL_OK, "5.0.0")
        assert s["last_status_sent"] is True and s["pending"] == 0
        assert s["last_contact"] is not None and abs(s["last_contact"] - time.time()) < 60
    watched = by_name["watched"]
    assert watched["role"] == "monitor"
    assert (watched["offered_version"], watched["offered_name"]) == ("7.0.0", "other")

    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "status")
    assert code == 0
    agent_line = next(line for line in out.splitlines() if line.startswith("mqtt-agent"))
    assert '5.0.0 "cfg"' in agent_line and f"{FINAL_OK} 5.0.0" in agent_line
    assert "not yet sent" not in agent_line

    # history --json: every row, oldest first, with its source and cloud state.
    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "history", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["device"] for r in rows} == {"mqtt-agent", "http-agent", "watched"}
    for r in rows:
        assert r["source"] in ("mqtt", "http")
        assert r["cloud"] == ("" if r["direction"] != "out" else "sent")
    mqtt_reports = [r for r in rows if r["device"] == "mqtt-agent" and r["resource"] == "otau_in"]
    assert {r["source"] for r in mqtt_reports} == {"mqtt"}
    sent = [(json.loads(r["value"])["version"], r["status"]) for r in mqtt_reports]
    assert sent == statuses(connector, "a0001")  # raw values, same order as the cloud has them

    # history --csv --device: parses back, header first, same rows as JSON for that device.
    code, out, _ = run_cli(
        capsys, outputs, "--config", str(cfg), "history", "--csv", "--device", "http-agent"
    )
    assert code == 0
    records = list(csv.DictReader(io.StringIO(out)))
    expected = [r for r in rows if r["device"] == "http-agent"]
    assert [int(r["id"]) for r in records] == [r["id"] for r in expected]
    assert all(r["source"] == "http" for r in records)
    assert [r["value"] for r in records] == [r["value"] for r in expected]  # raw, exact
    assert float(records[0]["time"]) == expected[0]["time"]

    # The table: one line per row plus the header, with source and cloud state.
    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "history")
    assert code == 0
    table = out.splitlines()
    assert table[0].split()[:2] == ["TIME", "DEVICE"] and len(table) == len(rows) + 1
    assert any("mqtt-agent" in line and "sent" in line and FINAL_OK in line for line in table)

    # An unknown device is a usage error naming it.
    code, out, err = run_cli(capsys, outputs, "--config", str(cfg), "history", "--device", "nope")
    assert code == 2 and out == ""
    assert "nope" in err and len(err.strip().splitlines()) == 1

    # The console script gives the same history.
    code, out, err = await run_script(outputs, "--config", str(cfg), "history", "--json")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == rows


def test_history_and_status_redact_configured_tokens_and_mark_unsent_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = Outputs()  # this test checks the redaction itself: a token IS in the store
    cfg = write_config(
        tmp_path / "site.toml",
        _FakeConnector(),
        [agent("gw", "a0001", "mqtt", tmp_path / "rec")],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    config = load_config(cfg)
    token = TOKENS["a0001"]
    with Store.open(config.locations.db_path) as store:
        store.record_step(
            device="gw",
            reports=[
                PendingReport(
                    resource="otau_in",
                    value=StatusReport(
                        "2.0.0", Status.INSTALL_ERROR, f"bad {token} \x1b[2J"
                    ).to_json(),
                    source="serial",
                    version="2.0.0",
                    status="INSTALL_ERROR",
                )
            ],
            snapshot=None,
        )
    for argv in (["status"], ["status", "--json"], ["history"], ["history", "--json"],
                 ["history", "--csv"]):  # fmt: skip
        code, out, err = run_cli(capsys, outputs, "--config", str(cfg), *argv)
        assert code == 0, err
        assert token not in out and token not in err
        assert "***" in out
        assert "\x1b" not in out or argv[-1] in ("--json", "--csv")  # raw only in json/csv
    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "status")
    assert "INSTALL_ERROR 2.0.0" in out and "(not yet sent)" in out
    code, out, _ = run_cli(capsys, outputs, "--config", str(cfg), "history", "--csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert (row["source"], row["cloud"], row["delivered_at"]) == ("serial", "not yet sent", "")


class _FakeConnector:
    """Only the URLs a config needs (no listener: these commands use no network)."""

    http_url = "http://127.0.0.1:9"
    mqtt_url = "mqtt://127.0.0.1:9"


# -- sync -----------------------------------------------------------------------------------------

FLOW = [Status.INIT, Status.TEST, Status.TEST_SUCCESS, Status.DOWNLOAD, Status.DOWNLOAD_SUCCESS,
        Status.INSTALL, Status.INSTALL_SUCCESS, Status.INSTALLED_VERSION]  # fmt: skip


def make_backlog(config_path: Path, device: str, start: float) -> list[tuple[str, float]]:
    """An update's reports made while offline, several in the same second; (value, produced_at)."""
    config = load_config(config_path)
    made: list[tuple[str, float]] = []
    with Store.open(config.locations.db_path) as store:
        for i, status in enumerate(FLOW):
            at = start + i * 0.4
            value = StatusReport("2.1.0", status, f"step {i}").to_json()
            store.record_step(
                device=device,
                reports=[
                    PendingReport("otau_in", value, "serial", "2.1.0", status.value, produced_at=at)
                ],
                snapshot=None,
                time=at,
            )
            made.append((value, at))
    return made


def pending(config_path: Path, device: str | None = None) -> int:
    with Store.open(load_config(config_path).locations.db_path) as store:
        return store.count_pending(device)


async def test_sync_delivers_the_backlog_in_order_once_with_original_timestamps(
    tmp_path: Path, connector: Connector, capsys: pytest.CaptureFixture[str], outputs: Outputs
) -> None:
    cfg = site_config(
        tmp_path,
        connector,
        [bridge("sensor-1", "a0001", "mqtt"), bridge("sensor-2", "a0002", "http"),
         monitor("watched", "a0003")],
    )  # fmt: skip
    start = math.floor(time.time()) - 3 * 3600
    made = {
        "a0001": make_backlog(cfg, "sensor-1", start),
        "a0002": make_backlog(cfg, "sensor-2", start + 100),
    }
    assert pending(cfg) == 2 * len(FLOW)

    code, out, err = await run_script(outputs, "--config", str(cfg), "sync", "--timeout", "30")
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith(f"sensor-1: sent {len(FLOW)} of {len(FLOW)} reports (INIT 2.1.0")
    assert lines[1].startswith(f"sensor-2: sent {len(FLOW)} of {len(FLOW)} reports (INIT 2.1.0")
    assert all("INSTALLED_VERSION 2.1.0" in line for line in lines[:2])
    assert len(lines) == 2  # the monitor had nothing to send
    assert pending(cfg) == 0
    for identity, expected in made.items():
        got = connector.reports(identity, "otau_in")
        assert [r.value for r in got] == [v for v, _ in expected]  # in order, each once
        assert [math.floor(r.timestamp) for r in got] == [math.floor(t) for _, t in expected]
        assert all(r.via in ("mqtt-batch", "http-record") for r in got)
        # Nothing of the update flow: no acknowledgement, no boot report.
        assert connector.reports(identity, "config_otau") == []

    # The history now says "sent" for every report; a second sync has nothing to do.
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "history", "--json")
    assert {json.loads(line)["cloud"] for line in out.splitlines()} == {"sent"}
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "sync")
    assert code == 0 and out.strip() == "nothing to send: the outbox is empty"
    assert len(connector.reports("a0001", "otau_in")) == len(FLOW)


async def test_sync_with_the_connector_down_or_a_refused_token_keeps_the_outbox(
    tmp_path: Path, connector: Connector, capsys: pytest.CaptureFixture[str], outputs: Outputs
) -> None:
    bad = {**bridge("wrong-token", "a0003", "http"), "token": "x" * 40}
    cfg = site_config(
        tmp_path,
        connector,
        [bridge("sensor-1", "a0001", "mqtt"), bridge("sensor-2", "a0002", "http"), bad],
    )
    start = math.floor(time.time()) - 600
    for name in ("sensor-1", "sensor-2", "wrong-token"):
        make_backlog(cfg, name, start)
    before = pending(cfg)

    # The token is refused: one clear line, exit 1, nothing lost (the others go through).
    code, out, err = await run_cli_async(
        capsys, outputs, "--config", str(cfg), "sync", "--timeout", "10"
    )
    assert code == 1, (out, err)
    line = next(x for x in out.splitlines() if x.startswith("wrong-token"))
    assert "kept in the outbox" in line and "refused" in line
    assert pending(cfg, "wrong-token") == len(FLOW)
    assert pending(cfg, "sensor-1") == 0 and pending(cfg, "sensor-2") == 0

    # The connector is unreachable: every device says why, everything stays in the outbox.
    for name in ("sensor-1", "sensor-2"):
        make_backlog(cfg, name, start + 60)
    await connector.stop()
    before = pending(cfg)
    began = time.monotonic()
    code, out, err = await run_cli_async(
        capsys, outputs, "--config", str(cfg), "sync", "--timeout", "2"
    )
    assert code == 1
    assert time.monotonic() - began < 15
    lines = out.splitlines()
    assert len(lines) == 3
    for name in ("sensor-1", "sensor-2"):
        line = next(x for x in lines if x.startswith(name))
        assert f"sent 0 of {len(FLOW)} reports; {len(FLOW)} kept in the outbox" in line
        assert "not done within 2 s" in line
    assert pending(cfg) == before


# -- fetch ----------------------------------------------------------------------------------------


async def test_fetch_fills_the_cache_without_writing_to_the_connector(
    tmp_path: Path,
    connector: Connector,
    external: ExternalServer,
    capsys: pytest.CaptureFixture[str],
    outputs: Outputs,
) -> None:
    firmware = b"firmware-" * 40_000
    extra = b"extra data" * 1000
    connector.add_content("fw_2.1.0.bin", firmware)
    (external.root / "extra.tar").write_bytes(extra)
    cfg = site_config(
        tmp_path,
        connector,
        [agent("gw", "a0001", "mqtt", tmp_path / "rec"), bridge("sensor", "a0002"),
         monitor("watched", "a0003")],
    )  # fmt: skip
    url_list = {
        "version": "2.1.0",
        "name": "Firmware",
        "type": "URL_LIST",
        "payload": ["fw_2.1.0.bin", external.url("extra.tar") + f"#sha256={sha(extra)}"],
    }
    connector.set_config_otau("a0001", url_list)
    connector.set_config_otau("a0003", url_list)  # a monitor: never fetched

    code, out, err = await run_cli_async(capsys, outputs, "--config", str(cfg), "fetch")
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == 'gw: manifest 2.1.0 "Firmware" (URL_LIST), 2 files'
    fw_line = next(x for x in lines if "fw_2.1.0.bin" in x)
    assert f"{len(firmware)} B" in fw_line and sha(firmware)[:12] in fw_line
    assert fw_line.split()[-2:] == ["unpinned", "downloaded"]
    extra_line = next(x for x in lines if "extra.tar" in x)
    assert extra_line.split()[-2:] == ["pinned", "downloaded"] and sha(extra)[:12] in extra_line
    assert "sensor: no manifest offered, nothing to fetch" in lines
    assert not any("watched" in x for x in lines)
    blobs = {p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert firmware in blobs and extra in blobs

    # A second fetch finds both in the cache and asks no one for them.
    seen = len(external.seen_headers)
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "fetch")
    assert code == 0
    assert [x.split()[-1] for x in out.splitlines() if ".bin" in x or ".tar" in x] == [
        "cached",
        "cached",
    ]
    assert len(external.seen_headers) == seen
    # Never a write: not acknowledged, no report.
    for identity in ("a0001", "a0002", "a0003"):
        assert connector.reports(identity) == []
    resource = connector.resource("a0001", "config_otau")
    assert resource is not None and not resource.acked
    # The token went to the connector only, never to the external host.
    for headers in external.seen_headers:
        assert "X-Exosite-CIK" not in headers

    # A file that cannot be had: its line says why, exit 1, the other files still come.
    connector.set_config_otau(
        "a0002",
        {"version": "3.0.0", "name": "Broken", "type": "URL_LIST",
         "payload": ["missing.bin", external.url("extra.tar")]},
    )  # fmt: skip
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "fetch")
    assert code == 1
    missing = next(x for x in out.splitlines() if "missing.bin" in x)
    assert "failed:" in missing
    assert next(x for x in out.splitlines() if "extra.tar" in x and "unpinned" in x)

    # An invalid manifest, and the connector gone: one line each, exit 1.
    connector.set_config_otau("a0002", "not json")
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "fetch")
    assert code == 1 and "sensor: the offered manifest is not valid" in out
    await connector.stop()
    code, out, _ = await run_cli_async(capsys, outputs, "--config", str(cfg), "fetch")
    assert code == 1
    assert out.splitlines()[0].startswith("gw: cannot read config_otau: ")
