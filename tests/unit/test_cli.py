"""The command line contract of DESIGN.md §3: sub-commands, --help, --version, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otatui import __version__
from otatui.cli import main

OTATUI = str(Path(sys.executable).with_name("otatui"))
DESIGN_SUBCOMMANDS = ["demo", "run", "connector", "status", "history", "fetch", "sync"]


def test_help_lists_every_subcommand_of_the_design() -> None:
    out = subprocess.run([OTATUI, "--help"], capture_output=True, text=True, check=True).stdout
    for name in DESIGN_SUBCOMMANDS:
        assert f"\n    {name} " in out, name


def test_version_is_printed_by_the_console_script() -> None:
    result = subprocess.run([OTATUI, "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"otatui {__version__}"


@pytest.mark.parametrize(
    "argv", [["--bogus"], ["status", "--nope"], ["history", "--json", "--csv"]]
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otatui")


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "frobnicate" in capsys.readouterr().err


def test_config_shows_the_configuration_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    token = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        '[connector]\nurl = "https://x1.m2.exosite.io"\nmqtt_url = "mqtts://x1.m2.exosite.io"\n'
        f'[[devices]]\nname = "pump-7"\nidentity = "a0001"\ntoken = "{token}"\n'
        'role = "monitor"\nprotocol = "http"\n'
    )
    assert main(["--config", str(cfg), "config"]) == 0
    out = capsys.readouterr().out
    assert '"pump-7"' in out and token not in out


def test_bad_config_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[connector]\nurl = "https://x1.m2.exosite.io"\n[[devices]]\nname = "p"\n')
    assert main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad.toml" in err and "devices[0]" in err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "config"]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_connector_command_serves_until_terminated(tmp_path: Path) -> None:
    import signal
    import socket

    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    proc = subprocess.Popen(
        [OTATUI, "connector", "--http-port", str(ports[0]), "--mqtt-port", str(ports[1]),
         "--control-port", str(ports[2]), "--allow-any-identity"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("http_url: http://127.0.0.1:")
        import httpx

        resp = httpx.post(
            f"http://127.0.0.1:{ports[0]}/provision/activate", data={"id": "x1"}, timeout=5
        )
        assert resp.status_code == 200 and len(resp.text) == 40
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_connector_needs_both_tls_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connector", "--tls-cert", "c.pem"]) == 2
    assert "--tls-key" in capsys.readouterr().err
