"""`otatui demo`: a local connector, a simulated site and a scripted application side, in-process.

`site.py` builds the site (connector, payload files, simulated devices, the configuration the
engine runs), `script.py` plays the application side (manifests offered over time) and knows which
final status each scripted update must reach, `command.py` runs it with the TUI or headless.
"""
