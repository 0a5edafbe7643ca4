"""Keeping device tokens out of command output: every configured token is replaced by ``***``.

Tokens are never stored in the history or the outbox, and messages are written not to hold them;
this is the last line of defence before text leaves the process.
"""

from __future__ import annotations

from collections.abc import Iterable

from otatui.config import Config, TokenError

REDACTED = "***"


def configured_secrets(config: Config) -> list[str]:
    """Every token the configuration can reveal now (sources that cannot be read are skipped)."""
    out: list[str] = []
    for device in config.devices:
        try:
            token = device.token_value()
        except TokenError:
            continue
        if token:
            out.append(token)
    return out


SCAN_ABOVE = 32
"""With more secrets than this, one scan of the text per secret length replaces one search of
the text per secret (a 1,000-device fleet prints every event line through here)."""


class Redactor:
    """Replaces each of the given secrets by ``***`` in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        by_length: dict[int, set[str]] = {}
        for secret in self._secrets:
            by_length.setdefault(len(secret), set()).add(secret)
        self._by_length = sorted(by_length.items(), reverse=True)

    @classmethod
    def for_config(cls, config: Config) -> Redactor:
        return cls(configured_secrets(config))

    def __call__(self, text: str) -> str:
        if len(self._secrets) <= SCAN_ABOVE:
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, REDACTED)
            return text
        return self._scan(text)

    def _scan(self, text: str) -> str:
        """Every window of each secret length looked up in a set; overlapping hits merged."""
        hits: list[tuple[int, int]] = []
        for length, group in self._by_length:
            for start in range(len(text) - length + 1):
                if text[start : start + length] in group:
                    hits.append((start, start + length))
        if not hits:
            return text
        hits.sort()
        out: list[str] = []
        position = 0
        end = -1
        for start, stop in hits:
            if start < end:  # overlaps the hit being hidden: extend it
                end = max(end, stop)
                continue
            if end >= 0:
                out.append(REDACTED)
                position = end
            out.append(text[position:start])
            position, end = start, stop
        out.append(REDACTED)
        out.append(text[end:])
        return "".join(out)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
