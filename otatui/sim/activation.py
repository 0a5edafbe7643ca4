"""How a simulated device gets its token: kept in its folder, or by activating its identity.

Activation goes over the device's own protocol: MQTT `$provision/<identity>` (anonymous CONNECT,
the token comes back as a PUBLISH) or HTTP `POST /provision/activate`. A connector that cannot be
reached, or that does not answer because the identity is not whitelisted (yet), is tried again
with a growing pause (up to 2 s): a device on the LAN may well boot before the bridge whitelists
it. An identity that is already provisioned while the folder keeps no token is final
(`ActivationRefused`): only a reset on the connector allows a new activation. The token is kept
in `<folder>/token` (mode 0600) and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from otatui.murano.channel import ChannelError
from otatui.murano.mqtt import provision_mqtt
from otatui.murano.provisioning import AlreadyProvisioned, activate

log = logging.getLogger(__name__)

TOKEN_FILE = "token"  # noqa: S105 -- a file name, not a secret
_MAX_RETRY_S = 2.0


class ActivationRefused(Exception):
    """The identity cannot be activated (one line, never a token)."""


@dataclass(frozen=True, slots=True)
class Activation:
    """Where and how one device activates."""

    identity: str
    base_url: str
    mqtt_url: str | None  # activate over MQTT when given, else over HTTP
    ca_file: str | None = None
    timeout: float = 5.0

    async def activate(self, client: httpx.AsyncClient) -> str:
        """The identity's new token; tries again until the connector gives one."""
        delay = 0.1
        while True:
            try:
                if self.mqtt_url is not None:
                    return await provision_mqtt(
                        self.mqtt_url,
                        self.identity,
                        ca_file=self.ca_file,
                        insecure=True,
                        timeout=self.timeout,
                    )
                return await activate(client, self.base_url, self.identity, timeout_s=self.timeout)
            except AlreadyProvisioned:
                raise ActivationRefused(
                    f"{self.identity} is already provisioned on {self.base_url} and this device"
                    " kept no token: reset the identity on the connector"
                ) from None
            except ChannelError as exc:  # not reachable or not whitelisted (yet): try again
                log.info("%s: activation: %s; trying again", self.identity, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_S)


def load_token(folder: Path) -> str | None:
    """The token kept in `folder`, if any."""
    try:
        token = (folder / TOKEN_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return token or None


def save_token(folder: Path, token: str) -> None:
    """Keep `token` in `folder` (mode 0600, replaced atomically)."""
    path = folder / TOKEN_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token)
    os.replace(tmp, path)


def forget_token(folder: Path) -> None:
    (folder / TOKEN_FILE).unlink(missing_ok=True)
