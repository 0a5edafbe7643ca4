"""https payloads take the downloader's fast (raw) transport in the engine and in `fetch`, with
the same trust as the device API client (the connector's `ca_file`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from otatui.config import load_config
from otatui.engine.fleet import Fleet

TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"


async def test_the_fleet_downloads_https_payloads_on_the_raw_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # a proxied scheme stays with httpx
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    path = tmp_path / "site.toml"
    path.write_text(
        "[connector]\n"
        'url = "https://127.0.0.1:9"\n'
        "[paths]\n"
        f'data_dir = "{tmp_path / "data"}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\n'
        "[[devices]]\n"
        f'name = "gw"\nidentity = "gw1"\ntoken = "{TOKEN}"\nprotocol = "http"\n'
        'role = "agent"\ninstall_command = ["true"]\n'
    )
    async with Fleet(load_config(path)) as fleet:
        assert fleet.downloader is not None
        raw = fleet.downloader._raw  # the transport the downloader picks for a URL
        assert raw is not None
        assert raw.serves(httpx.URL("https://files.example.com/fw.bin"))
        assert raw.serves(httpx.URL("http://files.example.com/fw.bin"))
