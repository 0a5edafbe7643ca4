"""`otatui --config FILE` opens the TUI in a real terminal (a pty, TERM=xterm, 80×24) and `q`
quits with exit code 0; `--no-color` and NO_COLOR are honoured."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

OTATUI = str(Path(sys.executable).with_name("otatui"))
TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


def config(tmp_path: Path) -> Path:
    """A site whose connector is not there (a closed loopback port): the TUI must open anyway."""
    path = tmp_path / "plant.toml"
    path.write_text(
        "\n".join(
            [
                'site = "pty plant"',
                "[connector]",
                'url = "http://127.0.0.1:9"',
                "insecure = true",
                "[paths]",
                f'data_dir = "{tmp_path / "data"}"',
                f'cache_dir = "{tmp_path / "cache"}"',
                "[[devices]]",
                'name = "pump-1"',
                'identity = "a0001"',
                f'token = "{TOKEN}"',
                'protocol = "http"',
                'role = "agent"',
                'install_command = ["true"]',
                "",
            ]
        )
    )
    return path


def run_in_pty(
    args: list[str], env: dict[str, str], *, until: bytes, timeout: float = 30.0
) -> tuple[int, bytes]:
    """Start `args` on a fresh 80×24 pty, wait until `until` was drawn, press q, wait for exit."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        args, stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        quit_sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the pty
                    break
                if not chunk:
                    break
                seen += chunk
            if not quit_sent and until in seen:
                time.sleep(0.5)
                os.write(leader, b"q")
                quit_sent = True
            if proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return code, seen
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)


GREYS = {30, 37, 90, 97, 40, 47, 100, 107}


def colour_codes(seen: bytes) -> set[int]:
    """The 16-colour SGR codes used (foreground 30-37/90-97, background 40-47/100-107)."""
    codes: set[int] = set()
    for params in re.findall(rb"\x1b\[([0-9;]*)m", seen):
        for p in params.split(b";"):
            if p and (30 <= int(p) <= 47 or 90 <= int(p) <= 107):
                codes.add(int(p))
    return codes


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TEXTUAL", "COLORTERM")}
    env["TERM"] = "xterm"
    return env


@pytest.mark.timeout(60)
def test_otatui_opens_the_tui_and_q_quits(tmp_path: Path) -> None:
    code, seen = run_in_pty(
        [OTATUI, "--config", str(config(tmp_path))], base_env(), until=b"pump-1"
    )
    assert b"pump-1" in seen and b"pty plant" in seen
    assert TOKEN.encode() not in seen
    assert code == 0, seen[-2000:]
    # TERM=xterm: 16 colours only (no 256-colour or truecolor codes), and real colours in use
    assert b"38;5;" not in seen and b"38;2;" not in seen
    assert colour_codes(seen) - GREYS


@pytest.mark.timeout(60)
def test_no_color_variable_is_honoured(tmp_path: Path) -> None:
    env = base_env()
    env["NO_COLOR"] = "1"
    code, seen = run_in_pty([OTATUI, "--config", str(config(tmp_path))], env, until=b"pump-1")
    assert code == 0, seen[-2000:]
    assert colour_codes(seen) and not colour_codes(seen) - GREYS


@pytest.mark.timeout(60)
def test_run_without_headless_opens_the_tui_without_colour(tmp_path: Path) -> None:
    code, seen = run_in_pty(
        [OTATUI, "--config", str(config(tmp_path)), "--no-color", "run"],
        base_env(),
        until=b"pump-1",
    )
    assert code == 0, seen[-2000:]
    assert b"pump-1" in seen
    assert colour_codes(seen) and not colour_codes(seen) - GREYS  # greys only
