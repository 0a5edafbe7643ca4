"""A download cut twice mid-file and resumed with Range is visible in the engine's events: the
TransferProgress of the file counts the resumes (`resumed`) and where the last one continued
(`resumed_at`), JSON-ready; the update still ends installed with the right bytes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from engine_helpers import TOKENS, wait_status
from fault_helpers import booted_agent

from otatui.connector import Connector
from otatui.engine.events import TransferProgress

CUT = 300_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("protocol", ["mqtt", "http"])
async def test_a_download_cut_twice_reports_two_resumes(tmp_path: Path, protocol: str) -> None:
    firmware = os.urandom(1_500_000)
    identity = "a0001" if protocol == "mqtt" else "a0002"
    async with Connector(devices=list(TOKENS.items())) as connector:
        connector.add_content("fw.bin", firmware)
        async with booted_agent(tmp_path, connector, identity, protocol) as (records, seen):
            connector.faults.drop_download_after(CUT, count=2)
            offer = {"version": "2.0.0", "name": "fw", "type": "FILE"}
            offer["payload"] = f"fw.bin#sha256={sha(firmware)}"
            connector.set_config_otau(identity, offer)
            await wait_status(connector, identity, "2.0.0", "INSTALLED_VERSION", timeout=30)
        assert connector.faults.drop_count == 0
    got = json.loads((records / "2.0.0.json").read_text())["files"]
    assert got == {"fw.bin": sha(firmware)}
    progress = [e for e in seen if isinstance(e, TransferProgress) and e.file == "fw.bin"]
    last = progress[-1]
    assert last.done == last.total == len(firmware)
    assert (last.resumed, last.resumed_at) == (2, 2 * CUT)
    counts = [e.resumed for e in progress]
    assert counts == sorted(counts) and counts[0] == 0
    as_json = json.loads(json.dumps(last.to_dict()))
    assert (as_json["resumed"], as_json["resumed_at"]) == (2, 2 * CUT)
