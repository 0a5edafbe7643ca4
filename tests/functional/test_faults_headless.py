"""Faults that need a real `otatui run --headless` process (loopback only): kill -9 at several
seeded random points of an update, then restart; and a full disk while downloading (the process
runs with a file-size limit, RLIMIT_FSIZE, so writing past it fails with EFBIG).

The kill points are drawn from `random.Random(seed)` (a seed per test case, from
OTATUI_FAULT_SEED when set, to replay others).
Each point is an event of the update (download progress past a drawn fraction, the install
running for a drawn time, the final report just produced), so a seed names the same points on
any machine; only the exact byte at which the kill lands varies with timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import stat
from pathlib import Path

import pytest
from engine_helpers import TOKENS, sha, wait_status
from fault_helpers import (
    assert_delivered_once,
    assert_none_lost,
    eventually,
    fault_agent,
    final_statuses,
    headless,
    otau_in,
    site_config,
    site_customization,
    work_results,
)
from test_headless_run import Otatui, slow_server

from otatui.connector import Connector

SEED = int(os.environ.get("OTATUI_FAULT_SEED", "20261127"))
OK = "INSTALLED_VERSION"
AGENTS = (("mqtt-agent", "a0001"), ("http-agent", "a0002"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


def kill_points(rng: random.Random, last: str) -> list[tuple[str, float]]:
    """A kill as the checks start, three while downloading (at a drawn fraction of the file),
    then `last`: while the installer runs (after a drawn time) or just as the final report is
    produced. In this order each point is still ahead after the restart before it."""
    points = sorted(("download", round(rng.uniform(0.05, 0.9), 3)) for _ in range(3))
    return [("testing", 0.0), *points, (last, round(rng.uniform(0.0, 1.0), 3))]


def is_progress_past(nbytes: int):  # type: ignore[no-untyped-def]
    return lambda e: e["event"] == "progress" and int(e["done"]) >= nbytes


@pytest.mark.slow
@pytest.mark.parametrize("last", ["install", "final"])
async def test_kill_9_at_random_points_then_restart_loses_no_report(
    tmp_path: Path, last: str
) -> None:
    seed = SEED + len(last)
    rng = random.Random(seed)
    points = kill_points(rng, last)
    big = rng.randbytes(10 * 1024 * 1024)
    connector = Connector(devices=list(TOKENS.items()))
    await connector.start()
    records = tmp_path / "records"
    cfg = site_config(
        tmp_path,
        connector,
        [fault_agent(name, identity, p, records / name) for (name, identity), p in zip(
            AGENTS, ("mqtt", "http"), strict=True)],
    )  # fmt: skip
    env = _env(tmp_path)
    procs: list[Otatui] = []

    async def start() -> Otatui:
        proc = Otatui(cfg, env)
        procs.append(proc)
        await proc.start()
        return proc

    note = f"seed {seed}, kill points {points}"
    try:
        with slow_server(big) as slow:
            otatui = await start()
            for _, identity in AGENTS:
                await wait_status(connector, identity, "1.0.0", OK, 60)
            url = f"http://127.0.0.1:{slow.server_address[1]}/big.bin#sha256={sha(big)}"
            offer = {"version": "7.0.0-slow", "name": "Big", "type": "FILE", "payload": url}
            for _, identity in AGENTS:
                connector.set_config_otau(identity, offer)
            killed_at: list[int] = []  # bytes seen done before each kill while downloading
            version = offer["version"]

            def ended(e: dict[str, object]) -> bool:
                """The work on the offer is over (a kill can land a little after the event
                it waited for: just after the download completed, say)."""
                return e["event"] == "report" and e["version"] == version and (
                    e["status"] in ("INSTALL_SUCCESS", "INSTALL_ERROR", OK)
                )  # fmt: skip

            for number, (where, fraction) in enumerate(points):
                if where == "download":
                    past = is_progress_past(int(fraction * len(big)))
                    event = await otatui.wait_for(lambda e, p=past: p(e) or ended(e), 60)
                elif where == "testing":
                    event = await otatui.wait_for(lambda e: e.get("phase") == "testing", 60)
                elif where == "install":
                    event = await otatui.wait_for(
                        lambda e: e.get("phase") == "installing" or ended(e), 60
                    )
                    await asyncio.sleep(fraction * 1.2)
                else:
                    event = await otatui.wait_for(
                        lambda e: ended(e) and e["status"] in (OK, "INSTALL_ERROR"), 60
                    )
                if where in ("download", "install") and ended(event):
                    note += f"; the work had ended before point {number}"
                    break
                if where == "download":
                    killed_at.append(int(event["done"]))  # type: ignore[call-overload]
                assert await otatui.stop(signal.SIGKILL) == -signal.SIGKILL, note
                for part in (tmp_path / "cache" / "partial").glob("*"):
                    assert stat.S_IMODE(part.stat().st_mode) == 0o600, (part, note)
                otatui = await start()
            # After the last restart every agent ends the offer, once: installed, or (killed
            # while its installer ran) an install error; a new offer then completes.
            for _, identity in AGENTS:
                await _until_final(connector, identity, str(offer["version"]), note)
            follow_up = {"version": "7.1.0", "name": "cfg", "type": "JSON", "payload": {"a": 1}}
            for _, identity in AGENTS:
                connector.set_config_otau(identity, follow_up)
            for _, identity in AGENTS:
                await wait_status(connector, identity, "7.1.0", OK, 30)
            await asyncio.sleep(0.5)
            assert await otatui.stop() == 0, note
            ranges = list(slow.ranges)
        db = tmp_path / "data" / "otatui.db"
        resent: dict[str, list[str]] = {}
        for name, identity in AGENTS:
            ends = work_results(db, name, str(offer["version"]))
            assert ends in (["INSTALL_SUCCESS"], ["INSTALL_ERROR"]), (name, ends, note)
            if ends == ["INSTALL_SUCCESS"]:
                got = json.loads((records / name / f"{offer['version']}.json").read_text())
                assert got["files"] == {"big.bin": sha(big)}, note
            else:
                last = otau_in(connector, identity)
                assert any("interrupted" in r["message"] for r in last), (last, note)
            resent[name] = assert_none_lost(db, connector, name, identity)
        # A report the connector had when otatui was killed, before its confirmation was
        # stored, is sent again: at most the reports in flight at each kill.
        assert sum(len(v) for v in resent.values()) <= 3 * len(points), (resent, note)
        # The download was resumed with Range after the kills that came late enough for the
        # partial file to hold data, never restarted from zero after such a kill.
        resumed = [int(r.split("=")[1].split("-")[0]) for r in ranges if r]
        assert len(resumed) >= sum(1 for done in killed_at if done >= 1024 * 1024), (
            ranges,
            killed_at,
            note,
        )
        assert all(start > 0 for start in resumed), (ranges, note)
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.returncode is None:
                await proc.stop(signal.SIGKILL)
        await connector.stop()


async def _until_final(connector: Connector, identity: str, version: str, note: str) -> None:
    await eventually(
        lambda: bool(final_statuses(connector, identity, version)), 60, f"{identity}: {note}"
    )


async def test_full_disk_while_downloading_is_a_clear_download_error_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    site = site_customization(tmp_path / "site")
    limit = 2 * 1024 * 1024
    big, small = os.urandom(5 * 1024 * 1024), os.urandom(100_000)
    connector = Connector(devices=list(TOKENS.items()))
    await connector.start()
    connector.add_content("big.bin", big)
    connector.add_content("small.bin", small)
    records = tmp_path / "records"
    cfg = site_config(tmp_path, connector, [fault_agent("gw", "a0002", "http", records)])
    env = _env(tmp_path, PYTHONPATH=str(site), OTATUI_TEST_FSIZE=str(limit))
    try:
        async with headless(cfg, env) as otatui:
            await wait_status(connector, "a0002", "1.0.0", OK, 60)
            first = {"version": "8.0.0", "name": "big", "type": "FILE", "payload": "big.bin"}
            connector.set_config_otau("a0002", first)
            await wait_status(connector, "a0002", "8.0.0", "DOWNLOAD_ERROR", 60)
            second = {"version": "8.1.0", "name": "small", "type": "FILE", "payload": "small.bin"}
            connector.set_config_otau("a0002", second)
            await wait_status(connector, "a0002", "8.1.0", OK, 60)
            await asyncio.sleep(0.3)
            assert await otatui.stop() == 0
    finally:
        await connector.stop()
    (error,) = [r for r in otau_in(connector, "a0002") if r["status"] == "DOWNLOAD_ERROR"]
    message = error["message"]
    assert "file size limit" in message and "big.bin" in message, message
    lines = [e for e in otatui.events if e["device"] == "gw"]
    failed = [e for e in lines if e["event"] == "transfer" and not e["ok"]]
    assert [e["message"] for e in failed] == [message]
    reported = [e for e in lines if e["event"] == "report" and e["status"] == "DOWNLOAD_ERROR"]
    assert [e["message"] for e in reported] == [message]
    # Nothing corrupt or half-written is left in the cache; the small file is there, verified.
    cache = tmp_path / "cache"
    assert list((cache / "partial").iterdir()) == []
    assert [p.name for p in (cache / "sha256").iterdir()] == [sha(small)]
    assert json.loads((records / "8.1.0.json").read_text())["files"] == {"small.bin": sha(small)}
    assert_delivered_once(tmp_path / "data" / "otatui.db", connector, "gw", "a0002")
