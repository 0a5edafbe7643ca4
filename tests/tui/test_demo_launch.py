"""`otatui demo` (what `make demo` runs) opens the TUI on the live demo site in a real terminal,
and `q` quits with exit code 0, leaving no demo folder behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_launch import OTATUI, base_env, run_in_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


@pytest.mark.timeout(90)
def test_otatui_demo_opens_the_tui_on_the_live_site_and_q_quits(tmp_path: Path) -> None:
    env = base_env()
    env["TMPDIR"] = str(tmp_path)
    code, seen = run_in_pty([OTATUI, "demo"], env, until=b"gateway-01", timeout=60)
    assert b"gateway-01" in seen and b"Demo plant" in seen
    assert b"Traceback" not in seen
    assert code == 0, seen[-2000:]
    assert list(tmp_path.glob("otatui-demo-*")) == []  # the demo's folder was removed
