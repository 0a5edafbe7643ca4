"""A local Murano-compatible device API (HTTP and MQTT) served by otatui itself.

Used by the demo, the tests and the LAN bridge: an unmodified device that speaks the Murano device
API connects to it as it would to Murano. Start with ``async with Connector(...) as c:``.
"""

from .application import CONFIG_OTAU, OTAU_IN, Application
from .content import Content, ContentStore
from .faults import Faults
from .server import Connector, serve_forever, tls_context
from .state import ConnectorState, Device, ProvisioningError, Report, Resource

__all__ = [
    "CONFIG_OTAU",
    "OTAU_IN",
    "Application",
    "Connector",
    "ConnectorState",
    "Content",
    "ContentStore",
    "Device",
    "Faults",
    "ProvisioningError",
    "Report",
    "Resource",
    "serve_forever",
    "tls_context",
]
