"""Snapshot tests of every core screen and modal, at 80×24 and 120×40, from the frozen app.

Baselines live in `__snapshots__/test_snapshots/`; `pytest --snapshot-update` rewrites them (then
look at the SVGs before committing). Text layout depends on the Python and Textual versions, so
the comparison runs only on Python 3.11 (the pinned one, like Harlequin's baselines).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from otatui.tui.scenes import SCENES, Scene
from otatui.tui.snapshot_app import snapshot_app

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="snapshot baselines are recorded with Python 3.11; other versions lay text out "
    "differently",
)

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.name)
def test_scene(snap_compare: Callable[..., bool], scene: Scene, size: tuple[int, int]) -> None:
    assert snap_compare(
        snapshot_app(), press=scene.press, terminal_size=size, run_before=scene.prepare
    )


def test_no_color(snap_compare: Callable[..., bool], monkeypatch: Any) -> None:
    """--no-color: the states still read through their markers."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert snap_compare(snapshot_app(no_color=True), terminal_size=(80, 24))
