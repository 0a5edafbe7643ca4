"""The example configuration remaps keys by binding ids the app really has."""

from __future__ import annotations

from pathlib import Path

from otatui.config import load_config
from otatui.tui.keys import unknown_ids

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_example_config_remaps_only_known_binding_ids() -> None:
    keys = load_config(EXAMPLE, environ={"PUMP7_TOKEN": "x" * 40, "SENSOR2_TOKEN": "y" * 40}).keys
    assert keys
    assert unknown_ids(keys) == []
