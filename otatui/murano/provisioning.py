"""Provisioning over HTTP: `POST /provision/activate` gives a device its token; `GET /timestamp`.

Activation (murano-device-api.md §1.3) sends ``id=<identity>`` without credentials; ``200`` with a
40-character body is the token. ``404``: the identity is not whitelisted; ``409``: it was
provisioned already (its token is only given once; reset the identity in Murano to activate again);
``403``: the connector refuses it. Each refusal is a `ProvisioningError` with one clear line.
"""

from __future__ import annotations

import re
from typing import Final

import httpx

from otatui.murano.channel import ChannelError, NotConnected
from otatui.murano.device_api import describe_transport_error
from otatui.murano.form import FORM_CONTENT_TYPE, encode_form

ACTIVATE_PATH: Final = "/provision/activate"
TIMESTAMP_PATH: Final = "/timestamp"
TOKEN_LENGTH: Final = 40
# Tokens seen: lowercase hex and mixed-case alphanumerics; accept any visible ASCII.
_TOKEN = re.compile(rf"[\x21-\x7e]{{{TOKEN_LENGTH}}}")


class ProvisioningError(ChannelError):
    """The connector refused to activate an identity."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotWhitelisted(ProvisioningError):
    """HTTP 404: the identity is not in the connector's whitelist."""


class AlreadyProvisioned(ProvisioningError):
    """HTTP 409: the identity has a token already."""


async def activate(
    client: httpx.AsyncClient, base_url: str, identity: str, *, timeout_s: float = 30.0
) -> str:
    """Activate `identity` and return its new token (never logged or put in a message)."""
    if not identity:
        raise ValueError("an identity is needed to activate a device")
    try:
        resp = await client.post(
            base_url.rstrip("/") + ACTIVATE_PATH,
            content=encode_form([("id", identity)]).encode("ascii"),
            headers={"Content-Type": FORM_CONTENT_TYPE},
            timeout=timeout_s,
        )
    except httpx.TransportError as exc:
        reason = describe_transport_error(exc)
        raise NotConnected(
            f"activation of {identity}: cannot reach the connector ({reason})"
        ) from None
    status = resp.status_code
    if status == 200:
        token = resp.content.decode("ascii", errors="replace").strip()
        if not _TOKEN.fullmatch(token):
            raise ProvisioningError(
                f"activation of {identity} answered 200 without a {TOKEN_LENGTH}-character token",
                status,
            )
        return token
    if status == 404:
        raise NotWhitelisted(f"identity {identity} is not whitelisted on the connector", status)
    if status == 409:
        raise AlreadyProvisioned(
            f"identity {identity} is already provisioned; reset it in Murano or give its token",
            status,
        )
    if status == 403:
        raise ProvisioningError(
            f"the connector refuses to activate identity {identity} (HTTP 403)", status
        )
    raise ProvisioningError(f"activation of {identity} failed: HTTP {status}", status)


async def timestamp(client: httpx.AsyncClient, base_url: str, *, timeout_s: float = 30.0) -> float:
    """The connector's clock, Unix seconds (`GET /timestamp`, no credentials)."""
    try:
        resp = await client.get(base_url.rstrip("/") + TIMESTAMP_PATH, timeout=timeout_s)
    except httpx.TransportError as exc:
        reason = describe_transport_error(exc)
        raise NotConnected(f"timestamp: cannot reach the connector ({reason})") from None
    if resp.status_code != 200:
        raise ChannelError(f"timestamp: HTTP {resp.status_code}")
    text = resp.content.decode("ascii", errors="replace").strip()
    try:
        return float(text)
    except ValueError:
        raise ChannelError("timestamp: the answer is not a number of seconds") from None
