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


class Redactor:
    """Replaces each of the given secrets by ``***`` in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def for_config(cls, config: Config) -> Redactor:
        return cls(configured_secrets(config))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
