"""The one error a download ends with when it cannot deliver a verified file."""

from __future__ import annotations


class DownloadError(Exception):
    """A download failed for good (retries exhausted, refused, corrupt, disk full...).

    ``str()`` is one human line naming the file; it never holds a token or a URL's query.
    """
