"""Shared pieces of the engine tests: a site (connector + external file server + config)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otatui.connector import Connector, Report

TOKENS = {
    "a0001": "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y",
    "a0002": "22596363b3de40b06f981fb85d82312e8c0ed511",
    "a0003": "Zz9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK00",
}

# The install hook: records what it received (env and file contents' sha256) into record.json.
HOOK = r"""
import hashlib, json, os, pathlib, sys
files = [f for f in os.environ.get("OTATUI_FILES", "").split("\n") if f]
out = {
    "version": os.environ["OTATUI_VERSION"],
    "type": os.environ["OTATUI_TYPE"],
    "manifest": pathlib.Path(os.environ["OTATUI_MANIFEST"]).read_text(),
    "files": {pathlib.Path(f).name: hashlib.sha256(pathlib.Path(f).read_bytes()).hexdigest()
              for f in files},
    "cwd": os.getcwd(),
}
print("installing", os.environ["OTATUI_VERSION"], flush=True)
target = pathlib.Path(sys.argv[1])
target.mkdir(parents=True, exist_ok=True)
(target / (os.environ["OTATUI_VERSION"] + ".json")).write_text(json.dumps(out))
if os.environ["OTATUI_VERSION"].endswith("-bad"):
    sys.stderr.write("flash verify failed\n")
    sys.exit(1)
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen_headers.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        super().do_GET()


@dataclass
class ExternalServer:
    """A plain HTTP file server on 127.0.0.1 (serving `root`, created if missing) that records
    every request's headers; `with ExternalServer(root) as server:` closes it at the end."""

    root: Path
    port: int = 0
    seen_headers: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handler = lambda *a, **k: _Handler(*a, directory=str(self.root), **k)  # noqa: E731
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.seen_headers = self.seen_headers  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ExternalServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_config(
    path: Path,
    connector: Connector | Mapping[str, object],
    devices: list[dict[str, object]],
    *,
    data_dir: Path,
    cache_dir: Path,
    limits: str = "progress_interval = 0.2\n",
    site: str = "test site",
    sections: str = "",
) -> Path:
    """A site configuration: the `[connector]` table (a local connector's URLs, insecure, or the
    keys given), the paths, `limits` and `sections` (more TOML tables, e.g. `[lan]`), then one
    `[[devices]]` table per dict. Values are written as JSON literals."""
    table = (
        connector
        if isinstance(connector, Mapping)
        else {"url": connector.http_url, "mqtt_url": connector.mqtt_url, "insecure": True}
    )
    lines = [f"site = {json.dumps(site)}", "[connector]", *_keys(table)]
    lines += ["[paths]", f'data_dir = "{data_dir}"', f'cache_dir = "{cache_dir}"']
    lines += ["[limits]", limits, sections]
    for device in devices:
        lines += ["[[devices]]", *_keys(device)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _keys(table: Mapping[str, object]) -> list[str]:
    return [f"{key} = {json.dumps(value)}" for key, value in table.items()]


def site_config(
    tmp_path: Path,
    connector: Connector | Mapping[str, object],
    devices: list[dict[str, object]],
    **options: Any,
) -> Path:
    """`write_config` into tmp_path/site.toml, with data and cache folders under tmp_path;
    `options` are write_config's (limits, site, sections)."""
    return write_config(
        tmp_path / "site.toml",
        connector,
        devices,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        **options,
    )


def agent(name: str, identity: str, protocol: str, record_dir: Path) -> dict[str, object]:
    return {
        "name": name,
        "identity": identity,
        "token": TOKENS[identity],
        "protocol": protocol,
        "role": "agent",
        "installed_version": "1.0.0",
        "install_command": [sys.executable, "-c", HOOK, str(record_dir)],
        "install_timeout": 30,
    }


def statuses(connector: Connector, identity: str) -> list[tuple[str, str]]:
    out = []
    for report in connector.reports(identity, "otau_in"):
        data = json.loads(report.value)
        out.append((data["version"], data["status"]))
    return out


async def wait_status(
    connector: Connector, identity: str, version: str, status: str, timeout: float = 30
) -> None:
    """Wait until the connector received `otau_in` with this version and status."""

    def match(report: Report) -> bool:
        data = json.loads(report.value)
        return bool(data["version"] == version and data["status"] == status)

    try:
        async with asyncio.timeout(timeout):
            await connector.wait_for_report(identity, "otau_in", match)
    except TimeoutError:
        seen = statuses(connector, identity)[-5:]
        raise AssertionError(
            f"{identity}: no {version} {status} within {timeout} s (last: {seen})"
        ) from None


def iter_reports(connector: Connector, identity: str) -> Iterator[dict[str, str]]:
    for report in connector.reports(identity, "otau_in"):
        yield json.loads(report.value)
