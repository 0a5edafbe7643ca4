"""The OTAU contract: manifests (`config_otau`), payload items and status reports (`otau_in`).

Pure data and rules, no I/O.
"""

from otatui.otau.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    ManifestErrorKind,
    ManifestType,
    parse_manifest,
)
from otatui.otau.payload import (
    PayloadItem,
    PayloadItemError,
    PayloadSource,
    parse_payload_item,
)
from otatui.otau.status import Status, StatusReport

__all__ = [
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "ManifestError",
    "ManifestErrorKind",
    "ManifestType",
    "PayloadItem",
    "PayloadItemError",
    "PayloadSource",
    "Status",
    "StatusReport",
    "parse_manifest",
    "parse_payload_item",
]
