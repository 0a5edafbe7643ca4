"""A one-line filter box whose typing repaints only itself.

Textual's `Input` sets its `virtual_size` on every key, and `virtual_size` asks for a layout of
the whole screen (a full repaint: tens of milliseconds with a large table under a flood of
events). A filter box has a fixed size (`#fleet-filter` in the stylesheet), so here the
virtual size changes without a layout; scrolling a long text still works (it reads
`virtual_size` directly).
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Input


class FilterInput(Input):
    """`Input` without a screen layout per key (its size is fixed by the stylesheet)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)
