"""Resumable, verified downloads of payload items into a content-addressed cache.

Below :mod:`otatui.murano` in the layers: it knows payload items (:mod:`otatui.otau`) and the
store, and carries the one credential rule (:mod:`otatui.transfer.source`): the device token goes
only to the connector's own origin, never to an external host.
"""

from otatui.transfer.cache import ContentCache, materialize
from otatui.transfer.downloader import Downloader
from otatui.transfer.errors import DownloadError
from otatui.transfer.progress import CachedFile, Progress
from otatui.transfer.source import TOKEN_HEADER, ContentAuth

__all__ = [
    "TOKEN_HEADER",
    "CachedFile",
    "ContentAuth",
    "ContentCache",
    "DownloadError",
    "Downloader",
    "Progress",
    "materialize",
]
