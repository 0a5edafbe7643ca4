"""No payload item can write outside its download folder, end to end.

External URLs whose last path segment decodes to a path (`..%2F..%2Fescape.bin`, backslashes,
`%2e%2e`, an absolute path, a NUL, a name starting with dots) are served by a local server and go
through a real session: the installer gets every file inside its fresh work folder under a safe
name, and nothing lands anywhere else. Content ids that are paths are refused before any download.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from engine_helpers import TOKENS, sha, wait_status
from fault_helpers import booted_agent, otau_in

from otatui.connector import Connector

TRICKS = [
    "a/..%2F..%2F..%2Fescape-slash.bin",
    "..%5C..%5Cescape-backslash.bin",
    "%2e%2e",
    "x/%2Fetc%2Fescape-absolute",
    "%2E%2E%2F.escape-hidden",
    "escape%00nul.bin",
    "..%2F..%2Fsame.bin",
    "sub/same.bin",
]


class _AnyPath(http.server.BaseHTTPRequestHandler):
    """Answers any path with bytes that name it."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = f"file at {unquote(self.path)}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def any_path_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnyPath)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
async def connector():
    async with Connector(devices=list(TOKENS.items())) as c:
        yield c


async def test_payload_names_that_are_paths_stay_inside_the_install_folder(
    tmp_path: Path, connector: Connector, any_path_server: str
) -> None:
    urls = [f"{any_path_server}/{trick}" for trick in TRICKS]
    offer = {"version": "3.0.0", "name": "tricky", "type": "URL_LIST", "payload": urls}
    async with booted_agent(tmp_path, connector, "a0001", "mqtt") as (records, _seen):
        connector.set_config_otau("a0001", offer)
        await wait_status(connector, "a0001", "3.0.0", "INSTALLED_VERSION", 30)
        for i, bad in enumerate(("../escape.bin", "/etc/escape", "..", "a\\..\\escape")):
            refused = {"version": f"3.1.{i}", "name": "x", "type": "FILE", "payload": bad}
            connector.set_config_otau("a0001", refused)
            await wait_status(connector, "a0001", str(refused["version"]), "TEST_ERROR", 20)
    got = json.loads((records / "3.0.0.json").read_text())
    workdir = Path(got["cwd"])
    placed = [Path(p) for p in got["paths"]]
    assert len(placed) == len(TRICKS) == len(set(placed))
    for path in placed:
        assert path.parent == workdir, path
        name = path.name
        assert name not in ("", ".", "..") and not name.startswith(".")
        assert "/" not in name and "\\" not in name and "\x00" not in name
    assert sorted(got["listing"]) == sorted(p.name for p in placed)
    # Each file holds what its own URL served, and nothing escaped anywhere under the test root.
    expected = {sha(f"file at /{unquote(t)}".encode()) for t in TRICKS}
    assert set(got["files"].values()) <= expected and len(got["files"]) == len(TRICKS)
    escaped = [p for p in tmp_path.rglob("*escape*") if "records" not in p.parts]
    assert escaped == [], escaped
    assert not (tmp_path.parent / "escape-slash.bin").exists()
    refused = [r for r in otau_in(connector, "a0001") if r["status"] == "TEST_ERROR"]
    assert len(refused) == 4 and all("content id" in r["message"] or "item" in r["message"]
                                     for r in refused)  # fmt: skip


async def test_content_ids_that_are_paths_stay_inside_the_connector_content_area(
    tmp_path: Path,
) -> None:
    """The local connector (which the LAN bridge fills with payload files) keeps every content
    id, whatever it holds, as one file inside its content folder, and serves it back by id."""
    ids = ["../escape.bin", "a/../../escape2.bin", str(tmp_path / "abs-escape.bin"), "..", "."]
    ids += ["sub\\..\\..\\escape3.bin", "x\x00y"]
    async with Connector(data_dir=tmp_path / "connector") as connector:
        for i, content_id in enumerate(ids):
            item = connector.add_content(content_id, f"body {i}".encode())
            assert item.path.parent == tmp_path / "connector" / "content", item.path
        assert sorted(c.id for c in connector.contents()) == sorted(ids)
    outside = [p for p in tmp_path.rglob("*") if "connector" not in p.parts]
    assert outside == []
