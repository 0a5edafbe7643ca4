"""The terminal UI: a consumer of engine events (`state`), the engine behind one door
(`backend`), and the Textual app (`app`, `screens/`, `widgets/`, `otatui.tcss`).

`otatui.tui.state` and `otatui.tui.backend` import no Textual, so they can be tested and reused
without a terminal; only `app`, `screens` and `widgets` do.
"""
