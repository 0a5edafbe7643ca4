"""`otatui fetch`: download the payloads of each device's current manifest for offline work.

For every agent and bridge device, the current ``config_otau`` is read over HTTP (a plain read
with the device's token: nothing is written to the connector, nothing is acknowledged), parsed,
and each payload item is put in the local cache with the `Downloader`: connector content with the
device's token, external URLs with no credential at all, each verified against its
``#sha256=`` pin when it has one. A file already usable from the cache costs no request.
Monitors are skipped: they never update anything.

The manifest text read is kept in the store for each device (with the sha256 of each file
verified), so that a bridge can later work from it while the connector is unreachable
(`otatui.engine.forwarding`); a device with no (valid) manifest offered has its kept one
removed: offline, it must not be given an update the cloud no longer offers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from otatui.config import Config, DeviceConfig, TokenError
from otatui.engine.overview import align
from otatui.murano.channel import ChannelError
from otatui.murano.device_api import tls_context
from otatui.murano.http import HttpChannel, device_api_client
from otatui.otau.manifest import ManifestError, parse_manifest
from otatui.otau.payload import PayloadItem, PayloadSource
from otatui.store import Store, StoreError
from otatui.transfer import ContentAuth, Downloader, DownloadError

CONFIG_OTAU = "config_otau"
FETCH_ROLES = ("agent", "bridge")


class FileState(StrEnum):
    CACHED = "cached"
    """Already in the cache, usable without any request."""
    DOWNLOADED = "downloaded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileFetch:
    """One payload file of one device's manifest."""

    filename: str
    source: str
    """``content`` or ``external``."""
    pinned: bool
    state: FileState
    size: int | None = None
    sha256: str | None = None
    error: str | None = None


@dataclass
class DeviceFetch:
    """What the fetch found and did for one device."""

    device: str
    version: str | None = None
    name: str | None = None
    manifest_type: str | None = None
    files: list[FileFetch] = field(default_factory=list)
    error: str | None = None
    """Why the manifest could not be read or used (``None``: see `files`)."""
    offered: bool = True
    """False when the device has no manifest on the connector (nothing to fetch, not an error)."""

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.state is not FileState.FAILED for f in self.files)


class Prefetch:
    """Reads the devices' manifests and fills the cache (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        read_timeout: float = 30.0,
        on_device: Callable[[DeviceFetch], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.read_timeout = read_timeout
        self.on_device = on_device

    async def run(self) -> list[DeviceFetch]:
        """Every agent and bridge, in configuration order; each device's files concurrently."""
        devices = [d for d in self.config.devices if d.role in FETCH_ROLES]
        results: list[DeviceFetch] = []
        connector = self.config.connector
        ca_file = str(connector.ca_file) if connector.ca_file else None
        async with (
            device_api_client(ca_file=ca_file) as client,
            Downloader(
                client,
                self.store,
                self.config.locations.cache_dir,
                concurrency=self.config.limits.concurrent_downloads,
                ssl_context=tls_context(ca_file),
            ) as downloader,
        ):
            for device in devices:
                result = await self._device(device, client, downloader)
                results.append(result)
                if self.on_device is not None:
                    self.on_device(result)
        return results

    async def _device(
        self, device: DeviceConfig, client: httpx.AsyncClient, downloader: Downloader
    ) -> DeviceFetch:
        result = DeviceFetch(device=device.name)
        try:
            token = _token(device)
            channel = HttpChannel(client, self.config.connector.base_url, token, watch=())
            try:
                async with asyncio.timeout(self.read_timeout):
                    values = await channel.read([CONFIG_OTAU])
            except TimeoutError:
                raise ChannelError(f"no answer within {self.read_timeout:g} s") from None
            finally:
                await channel.close()
        except (ChannelError, TokenError) as exc:
            result.error = f"cannot read config_otau: {exc}"
            return result
        raw = values.get(CONFIG_OTAU, "")
        if not raw.strip():
            result.offered = False
            self._forget(result)
            return result
        parsed = parse_manifest(raw)
        if isinstance(parsed, ManifestError):
            result.version = parsed.version
            result.error = f"the offered manifest is not valid: {parsed.reason}"
            self._forget(result)
            return result
        result.version, result.name = parsed.version, parsed.name
        result.manifest_type = parsed.type.value
        auth = ContentAuth(self.config.connector.base_url, token)
        result.files = list(
            await asyncio.gather(*(_fetch(downloader, item, auth) for item in parsed.items))
        )
        try:
            self.store.put_fetched(
                device=device.name,
                raw=raw,
                version=parsed.version,
                files=[f.sha256 if f.state is not FileState.FAILED else None for f in result.files],
            )
        except StoreError as exc:
            result.error = f"manifest not kept for offline work: {exc}"
        return result

    def _forget(self, result: DeviceFetch) -> None:
        try:
            self.store.delete_fetched(result.device)
        except StoreError as exc:
            result.error = result.error or f"cannot forget the kept manifest: {exc}"


def _token(device: DeviceConfig) -> str:
    if device.auth == "cert":
        raise ChannelError("certificate authentication is not supported by otatui yet")
    token = device.token_value()
    if not token:
        raise ChannelError("no token: the device was never provisioned")
    return token


async def _fetch(downloader: Downloader, item: PayloadItem, auth: ContentAuth) -> FileFetch:
    use = auth if item.source is PayloadSource.CONTENT else None
    state = FileState.CACHED
    try:
        cached = downloader.cached(item, use)
        if cached is None:
            state = FileState.DOWNLOADED
            cached = await downloader.fetch(item, use)
    except (DownloadError, StoreError) as exc:
        return FileFetch(
            item.filename, item.source.value, item.pinned, FileState.FAILED, error=str(exc)
        )
    return FileFetch(
        item.filename, item.source.value, item.pinned, state, cached.size, cached.sha256
    )


# -- summary lines --------------------------------------------------------------------------------


def device_lines(result: DeviceFetch) -> list[str]:
    """The device's line, then one aligned line per file: name, size, sha256 (short), whether
    it was already cached or downloaded now, pinned or not, or the error."""
    if result.error is not None:
        return [f"{result.device}: {result.error}"]
    if not result.offered:
        return [f"{result.device}: no manifest offered, nothing to fetch"]
    head = f'{result.device}: manifest {result.version} "{result.name}" ({result.manifest_type})'
    if not result.files:
        return [f"{head}, no files to download"]
    count = len(result.files)
    lines = [f"{head}, {count} file{'s' if count > 1 else ''}"]
    rows: list[tuple[str, ...]] = []
    for f in result.files:
        pin = "pinned" if f.pinned else "unpinned"
        if f.state is FileState.FAILED:
            rows.append(("", f.filename, "-", "-", pin, f"failed: {f.error}"))
        else:
            rows.append(("", f.filename, f"{f.size} B", (f.sha256 or "")[:12], pin, f.state.value))
    lines.extend(align(rows))
    return lines
