"""Secrets and files: no device token in anything otatui prints, logs, stores or exports, nor in
the committed screenshots and snapshot SVGs; private files are private.

One scenario runs once for the module: a real `otatui run --headless` (logging everything at
DEBUG to stderr) against the local connector with a token given inline, one in a token file, one
in an environment variable, a device provisioned on the spot (its token kept in the data dir) and
one whose token the connector refuses; updates succeed, fail in the installer and are refused as
bad input. Then every command that shows data runs on the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from engine_helpers import TOKENS, wait_status
from fault_helpers import fault_agent, headless, site_config, site_customization

from otatui.connector import Connector

REPO = Path(__file__).resolve().parents[2]
OTATUI = str(Path(sys.executable).with_name("otatui"))
REFUSED = "Wr0ngT0kenWr0ngT0kenWr0ngT0kenWr0ngT0ken"  # configured, but the connector refuses it
FRESH = "fresh-1"  # provisioned during the scenario
COMMANDS = {
    "history": ["history"],
    "history --json": ["history", "--json"],
    "history --csv": ["history", "--csv"],
    "status": ["status"],
    "status --json": ["status", "--json"],
    "config": ["config"],
}


@dataclass
class Outcome:
    tokens: list[str]  # every token of the scenario, the provisioned one included
    data_dir: Path
    cache_dir: Path
    texts: dict[str, str] = field(default_factory=dict)  # what was printed or logged, by source


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _scenario(root: Path, outcome: Outcome) -> None:
    connector = Connector(devices=[*TOKENS.items(), (FRESH, None)])
    await connector.start()
    connector.add_content("fw.bin", b"firmware " * 1000)
    token_file = root / "secrets" / "a0002.token"
    token_file.parent.mkdir()
    token_file.write_text(TOKENS["a0002"] + "\n")
    token_file.chmod(0o600)
    records = root / "records"
    devices = [
        fault_agent("inline-gw", "a0001", "mqtt", records),
        {**fault_agent("file-gw", "a0002", "http", records), "token": None},
        {"name": "env-watch", "identity": "a0003", "protocol": "http", "role": "monitor",
         "token_env": "OTATUI_TEST_TOKEN"},
        {**fault_agent("fresh-gw", "a0001", "mqtt", records), "identity": FRESH, "token": None},
        {"name": "refused", "identity": "a0004", "protocol": "mqtt", "role": "monitor",
         "token": REFUSED},
    ]  # fmt: skip
    devices[1]["token_file"] = str(token_file)
    for device in devices:
        if device.get("token") is None:
            device.pop("token", None)
    cfg = site_config(root, connector, devices)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "xdg"),
        "OTATUI_TEST_TOKEN": TOKENS["a0003"],
        "PYTHONPATH": str(site_customization(root / "site")),
        "OTATUI_TEST_DEBUG_LOG": "1",
    }
    try:
        async with headless(cfg, env) as otatui:
            agents = ("a0001", "a0002", FRESH)
            for identity in agents:
                await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION", 30)
            offers = [
                ({"version": "2.0.0", "payload": "fw.bin"}, "INSTALLED_VERSION"),
                ({"version": "2.1.0-crash", "payload": "fw.bin"}, "INSTALL_ERROR"),
                ({"version": "2.2.0", "payload": "javascript:alert(1)"}, "TEST_ERROR"),
            ]
            for offer, _ in offers:
                offer.update(name="fw", type="FILE")
            for offer, status in offers:
                for identity in agents:
                    connector.set_config_otau(identity, offer)
                for identity in agents:
                    await wait_status(connector, identity, str(offer["version"]), status, 30)
            connector.set_config_otau("a0003", offers[0][0])
            await otatui.wait_for(lambda e: e["device"] == "env-watch" and e["event"] == "manifest")
            await otatui.wait_for(
                lambda e: e["device"] == "refused" and e.get("state") == "auth_failed"
            )
            await asyncio.sleep(0.5)
            assert await otatui.stop() == 0
    finally:
        await connector.stop()
    fresh_token = connector.device(FRESH).token
    assert fresh_token
    outcome.tokens = [*TOKENS.values(), REFUSED, fresh_token]
    outcome.texts["json lines"] = "\n".join(json.dumps(e) for e in otatui.events)
    outcome.texts["otatui stderr (DEBUG log)"] = otatui.stderr.decode()

    async def command(name: str, argv: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            OTATUI, "--config", str(cfg), *argv, env={**env, "OTATUI_TEST_DEBUG_LOG": ""},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, (name, err)
        outcome.texts[name] = out.decode() + err.decode()

    await asyncio.gather(*(command(name, argv) for name, argv in COMMANDS.items()))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    root = tmp_path_factory.mktemp("secrets")
    result = Outcome([], root / "data", root / "cache")
    handler = _Collect()
    logger = logging.getLogger()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        asyncio.run(_scenario(root, result))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    result.texts["connector log (DEBUG, in this process)"] = "\n".join(handler.lines)
    return result


def _leaks(text: str, tokens: list[str]) -> list[str]:
    return [token[:6] + "…" for token in tokens if token in text]


def test_the_scenario_produced_what_is_checked(outcome: Outcome) -> None:
    texts = outcome.texts
    assert '"status": "INSTALL_ERROR"' in texts["json lines"]
    assert "TEST_ERROR" in texts["history"] and "INSTALL_ERROR" in texts["history --csv"]
    assert "refused" in texts["status"] and "fresh-gw" in texts["status --json"]
    assert "DEBUG" in texts["otatui stderr (DEBUG log)"]
    assert (outcome.data_dir / "tokens" / FRESH).is_file()


@pytest.mark.parametrize(
    "source",
    ["json lines", "otatui stderr (DEBUG log)", "connector log (DEBUG, in this process)",
     *COMMANDS],
)  # fmt: skip
def test_no_token_in_output_logs_or_exports(outcome: Outcome, source: str) -> None:
    assert _leaks(outcome.texts[source], outcome.tokens) == [], source


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file())


def test_no_token_in_the_store_or_the_cache(outcome: Outcome) -> None:
    tokens_dir = outcome.data_dir / "tokens"
    checked = 0
    for path in _files(outcome.data_dir, outcome.cache_dir):
        if tokens_dir in path.parents:
            continue  # the provisioned token's own file, checked for its mode below
        data = path.read_bytes()
        assert [t for t in outcome.tokens if t.encode() in data] == [], path
        checked += 1
    assert checked >= 2  # at least the database and a cached payload


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_folders(outcome: Outcome) -> None:
    tokens_dir = outcome.data_dir / "tokens"
    assert _mode(outcome.data_dir) == 0o700
    assert _mode(tokens_dir) == 0o700
    assert _mode(tokens_dir / FRESH) == 0o600
    assert (tokens_dir / FRESH).read_text().strip() == outcome.tokens[-1]
    assert _mode(outcome.data_dir / "otatui.db") == 0o600
    for path in _files(outcome.data_dir, outcome.cache_dir):
        assert _mode(path) & 0o077 == 0, f"{path} is readable or writable by others"
    for path in [*outcome.data_dir.rglob("*"), *outcome.cache_dir.rglob("*")]:
        assert _mode(path) & 0o022 == 0, f"{path} is writable by others"
    blobs = list((outcome.cache_dir / "sha256").iterdir())
    assert blobs and all(_mode(b) == 0o400 for b in blobs)
    assert _mode(outcome.cache_dir / "sha256") == _mode(outcome.cache_dir / "partial") == 0o700


def test_the_cache_folder_is_private(outcome: Outcome) -> None:
    assert _mode(outcome.cache_dir) == 0o700


# --- committed pictures ----------------------------------------------------------------------

_QUOTED = re.compile(r"[\"']([A-Za-z0-9]{32,64})[\"']")
# A Murano token is 40 letters and digits; hex digests are lower case, so ask for an upper case.
_TOKEN_SHAPED = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[0-9])"
                           r"[A-Za-z0-9]{40}(?![A-Za-z0-9])")  # fmt: skip


def known_tokens() -> list[str]:
    """Every token the test suite and the shipped configs use (quoted 32-64 character strings on
    lines that speak of tokens)."""
    found = {*TOKENS.values(), REFUSED}
    sources = [*(REPO / "tests").rglob("*.py"), *(REPO / "config").glob("*.toml")]
    sources += [*(REPO / "otatui" / "tui").rglob("*.py"), *(REPO / "otatui" / "sim").rglob("*.py")]
    for path in sources:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if "token" in line.lower():
                found.update(_QUOTED.findall(line))
    return sorted(found)


def pictures() -> list[Path]:
    """The committed screenshots and TUI snapshots, whatever exists when the tests run."""
    return sorted(
        [
            *(REPO / "screenshots").glob("*.svg"),
            *(REPO / "tests" / "tui").rglob("__snapshots__/**/*"),
        ]
    )


def test_no_token_in_screenshots_or_snapshots() -> None:
    tokens = known_tokens()
    assert len(tokens) >= len(TOKENS) + 1
    for path in pictures():
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace").replace("&#160;", " ")
        assert _leaks(text, tokens) == [], path
        shaped = _TOKEN_SHAPED.findall(text)
        assert shaped == [], f"{path}: token-shaped text {[s[:6] + '…' for s in shaped]}"


def test_the_picture_check_finds_a_planted_token(tmp_path: Path) -> None:
    planted = tmp_path / "fake.svg"
    planted.write_text(f"<svg><text>token {TOKENS['a0001']}</text></svg>")
    text = planted.read_text()
    assert _leaks(text, known_tokens()) and _TOKEN_SHAPED.findall(text)


async def test_the_connector_control_endpoint_never_returns_a_token() -> None:
    import httpx

    paths = ["/health", "/devices", "/devices/a0001/resources/config_otau"]
    paths += ["/devices/a0001/reports", "/content", "/devices/new-1/reports"]
    devices = [*TOKENS.items(), ("fresh-2", None)]
    async with (
        Connector(control_port=0, devices=devices) as connector,
        httpx.AsyncClient(base_url=connector.control_url, timeout=10) as client,
    ):
        activate = f"{connector.http_url}/provision/activate"
        activated = await client.post(activate, data={"id": "fresh-2"})
        assert activated.status_code == 200
        added = await client.post("/devices", json={"identity": "new-1", "token": "N" * 40})
        assert added.status_code < 300
        connector.set_config_otau("a0001", '{"version":"1","name":"x","type":"JSON","payload":{}}')
        bodies = [added.text]
        for path in paths:
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            bodies.append(answer.text)
    tokens = [*TOKENS.values(), activated.text, "N" * 40]
    assert _leaks("\n".join(bodies), tokens) == []
