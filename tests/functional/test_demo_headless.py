"""`otatui demo --headless`: the whole demo site as a real process, exit 0 when every scripted
update reached its expected final status; its output is JSON lines and holds no token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(200)


def test_demo_headless_runs_every_scripted_update_to_its_final_status(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "otatui.cli", "demo", "--headless", "--keep"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"(\d+) of \1 scripted updates ended as expected", proc.stderr)
    assert "FAIL" not in proc.stderr

    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and all({"time", "device", "event"} <= e.keys() for e in events)
    finals = {
        (e["device"], e["version"], e["status"])
        for e in events
        if e["event"] == "report" and e["status"] in ("INSTALLED_VERSION", "INSTALL_ERROR")
    }
    assert ("valve-12", "3.0.0", "INSTALL_ERROR") in finals
    assert ("gateway-01", "2.1.0", "INSTALLED_VERSION") in finals
    kiosk = [e for e in events if e["event"] == "connection" and e["device"] == "kiosk-09"]
    assert kiosk[-1]["state"] == "auth_failed"  # the refused token, said once, stays the state
    assert "refused the device token" in kiosk[-1]["reason"]

    (kept,) = tmp_path.glob("otatui-demo-*")
    config = tomllib.loads((kept / "otatui.toml").read_text())
    assert (kept / "otatui.toml").stat().st_mode & 0o077 == 0
    tokens = [d["token"] for d in config["devices"]]
    assert tokens
    for token in tokens:
        assert token not in proc.stdout
        assert token not in proc.stderr
