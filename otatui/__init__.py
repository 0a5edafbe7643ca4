"""otatui: over-the-air updates of IoT devices on an Exosite Murano IoT Connector, in a terminal."""

__version__ = "0.1.0"
