"""Malformed configuration files and command-line arguments through the real `otatui` entry
point (a subprocess per case, all run at once): exit code 2, one line on stderr that names the
file and the key (or the option), nothing on stdout, no traceback, no token."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

OTATUI = str(Path(sys.executable).with_name("otatui"))
TOKEN = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"

CONNECTOR = '[connector]\nurl = "https://x1.m2.exosite.io"\nmqtt_url = "mqtts://x1.m2.exosite.io"\n'
DEVICE = (
    f'[[devices]]\nname = "pump-7"\nidentity = "a0001"\ntoken = "{TOKEN}"\nrole = "agent"\n'
    'install_command = ["sh", "install.sh"]\n'
)


@dataclass(frozen=True)
class Case:
    config: str | bytes | None  # the config file's content (None: no --config)
    argv: tuple[str, ...]  # after `--config FILE` (when there is one)
    needles: tuple[str, ...]  # what the one line must name


CASES: dict[str, Case] = {
    "toml syntax": Case(CONNECTOR + "[[devices]\n", ("config",), ("line 4, column", "TOML")),
    "not utf-8": Case(CONNECTOR.encode() + b'site = "caf\xe9"\n', ("status",), ("not UTF-8",)),
    "unknown key": Case(
        CONNECTOR + "insecur = true\n", ("run", "--headless"),
        ("connector.insecur", "did you mean 'insecure'"),
    ),
    "missing url": Case('[connector]\ninsecure = true\n', ("history",), ("connector.url",)),
    "wrong type": Case(
        CONNECTOR + DEVICE + "install_timeout = \"soon\"\n", ("run", "--headless"),
        ("devices[0].install_timeout",),
    ),
    "bad protocol": Case(
        CONNECTOR + DEVICE + 'protocol = "coap"\n', ("status",), ("devices[0].protocol",)
    ),
    "agent without hook": Case(
        CONNECTOR + DEVICE.replace('install_command = ["sh", "install.sh"]\n', ""), ("sync",),
        ("devices[0].install_command", "required for role = 'agent'"),
    ),
    "bad link": Case(
        CONNECTOR + DEVICE.replace('role = "agent"', 'role = "bridge"').replace(
            'install_command = ["sh", "install.sh"]\n', 'link = "usb"\n'), ("fetch",),
        ("devices[0].link",),
    ),
    "duplicate name": Case(
        CONNECTOR + DEVICE + DEVICE.replace("a0001", "a0002"), ("config",),
        ("devices[1].name", "duplicate name"),
    ),
    "two tokens": Case(
        CONNECTOR + DEVICE + 'token_env = "PUMP_TOKEN"\n', ("run", "--headless"),
        ("devices[0].token_env", "use only one of"),
    ),
    "token file missing": Case(
        CONNECTOR + DEVICE.replace(f'token = "{TOKEN}"', 'token_file = "no-such.token"'),
        ("status",), ("devices[0].token_file", "file not found"),
    ),
    "negative limit": Case(
        CONNECTOR + "[limits]\nconcurrent_downloads = -1\n", ("fetch",),
        ("limits.concurrent_downloads",),
    ),
    "config is a folder": Case(None, ("--config", ".", "status"), ("cannot read",)),
    "config missing": Case(None, ("--config", "nope.toml", "run", "--headless"), ("nope.toml",)),
    "sync timeout negative": Case(CONNECTOR, ("sync", "--timeout", "-1"), ("--timeout",)),
    "sync timeout nan": Case(CONNECTOR, ("sync", "--timeout", "nan"), ("--timeout",)),
    "history unknown device": Case(
        CONNECTOR + DEVICE, ("history", "--device", "pump-8"), ("pump-8",)
    ),
    "connector bad config": Case(
        CONNECTOR + DEVICE.replace('"a0001"', '"../a0001"'), ("connector", "--http-port", "0"),
        ("devices[0].identity",),
    ),
    "connector port text": Case(None, ("connector", "--http-port", "eighty"), ("--http-port",)),
    "connector tls port": Case(None, ("connector", "--mqtts-port", "0"), ("--tls-cert",)),
    "config without value": Case(None, ("--config",), ("--config",)),
}  # fmt: skip


def _run(name: str, case: Case, root: Path) -> subprocess.CompletedProcess[str]:
    folder = root / name.replace(" ", "-")
    folder.mkdir()
    argv = [OTATUI]
    if case.config is not None:
        config = folder / "site.toml"
        if isinstance(case.config, bytes):
            config.write_bytes(case.config)
        else:
            config.write_text(case.config)
        argv += ["--config", str(config)]
    argv += case.argv
    env = {
        **os.environ,
        **{f"XDG_{d}_HOME": str(folder / d.lower()) for d in ("CONFIG", "DATA", "CACHE")},
    }
    env.pop("PUMP_TOKEN", None)
    return subprocess.run(
        argv, cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("bad-cli")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, name, case, root) for name, case in CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_or_argument_exits_2_with_one_line_naming_the_key(
    name: str, outcomes: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result, case = outcomes[name], CASES[name]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.rstrip("\n")
    assert line.startswith("otatui"), line
    assert "Traceback" not in line and TOKEN not in line
    for needle in case.needles:
        assert needle in line, line
    if isinstance(case.config, str | bytes):
        assert "site.toml" in line or case.argv[0] in ("sync", "history"), line
