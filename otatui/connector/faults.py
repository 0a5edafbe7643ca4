"""Fault injection for tests and demos: failed requests, delays, downloads cut short, writes
stored but never confirmed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Faults the HTTP device API applies to the next requests. All zero/None = none."""

    fail_count: int = 0  # answer this many next requests with ``fail_status``
    fail_status: int = 500
    fail_path: str | None = None  # only requests whose path starts with this
    delay_s: float = 0.0  # wait this long before answering every request
    drop_after_bytes: int | None = None  # cut the next downloads after this many body bytes
    drop_count: int = 0  # ... this many of them
    # Store the next device writes (HTTP POST, MQTT PUBLISH) but cut the connection instead of
    # confirming them (no 204, no PUBACK): the device cannot know the connector has them.
    unconfirmed_writes: int = 0

    def fail_next(self, count: int, *, status: int = 500, path: str | None = None) -> None:
        self.fail_count, self.fail_status, self.fail_path = count, status, path

    def drop_download_after(self, nbytes: int, *, count: int = 1) -> None:
        self.drop_after_bytes, self.drop_count = nbytes, count

    def lose_confirmations(self, count: int = 1) -> None:
        self.unconfirmed_writes = count

    def clear(self) -> None:
        self.fail_count, self.fail_path, self.delay_s = 0, None, 0.0
        self.drop_after_bytes, self.drop_count = None, 0
        self.unconfirmed_writes = 0

    def take_failure(self, path: str) -> int | None:
        """The status to fail this request with, if a failure is armed for it."""
        if self.fail_count <= 0:
            return None
        if self.fail_path is not None and not path.startswith(self.fail_path):
            return None
        self.fail_count -= 1
        return self.fail_status

    def take_drop(self) -> int | None:
        """After how many body bytes to cut this download, if a drop is armed."""
        if self.drop_after_bytes is None or self.drop_count <= 0:
            return None
        self.drop_count -= 1
        return self.drop_after_bytes

    def take_unconfirmed(self) -> bool:
        """Whether to cut the connection instead of confirming this stored write."""
        if self.unconfirmed_writes <= 0:
            return False
        self.unconfirmed_writes -= 1
        return True
