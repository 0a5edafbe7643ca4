"""Two engines on one data dir: the second `otatui run --headless` refuses with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import write_config

pytestmark = pytest.mark.timeout(60)


def test_a_second_engine_on_the_same_data_dir_exits_1_with_one_line(tmp_path: Path) -> None:
    device = {"name": "gw", "identity": "gw1", "token": "t0k3n-not-shown-anywhere",
              "protocol": "http", "role": "agent", "install_command": ["true"]}  # fmt: skip
    config = write_config(
        tmp_path / "site.toml",
        {"url": "http://127.0.0.1:9", "insecure": True},  # nothing listens: it keeps retrying
        [device],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        limits="",
    )
    command = [sys.executable, "-m", "otatui.cli", "--config", str(config), "run", "--headless"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        first.stdout.readline()  # the engine is up (it prints its first event)
        started = time.monotonic()
        second = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("otatui: "), second.stderr
        assert "Traceback" not in second.stderr
        assert "t0k3n" not in second.stderr + second.stdout
        assert time.monotonic() - started < 20
    finally:
        os.kill(first.pid, signal.SIGTERM)
        first.communicate(timeout=20)
    assert first.returncode == 0
