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
