"""The LAN push's files in the local connector's content area, and the manifest that names them.

- Content ids come from the file name and its sha256 (`fw.bin` -> `fw-<16 hex>.bin`), so a
  repeated push of the same file reuses the item already there.
- Items are tagged `otatui=lan` (and `sha256=<hex>`) and their files are hard-linked (copied
  across file systems) into `<content dir>/lan/`: the engine's install folder is removed after
  the push, the content stays.
- Each file is also served under the pinned item itself as its id (`fw-<16 hex>.bin#sha256=<hex>`,
  the same file): a device that does not know the pin and asks for the whole item, correctly
  percent-encoded, still gets it (one that leaves the `#` unencoded asks for the plain id anyway,
  as its HTTP client drops the fragment).
- `prune_content` removes every `otatui=lan` item that no device's current `config_otau` names:
  content uploaded by anyone else is never touched.
- `rewrite_manifest` points every payload item at its content id with a `#sha256=` pin, which our
  payload parser accepts on a content id, so the device verifies what it downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from otatui.connector import CONFIG_OTAU, Application
from otatui.links.file_digest import file_digest
from otatui.otau.manifest import Manifest, ManifestType, parse_manifest
from otatui.otau.payload import (
    PayloadItem,
    PayloadItemError,
    PayloadSource,
    fit_filename,
    parse_payload_item,
    safe_filename,
)

CONTENT_TAG = "otatui"
CONTENT_TAG_VALUE = "lan"
DEPOT_DIR = "lan"
_SHA_CHARS = 16
_LINK_FALLBACK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


class LanError(Exception):
    """The push could not be prepared; one line."""


@dataclass(frozen=True, slots=True)
class PushedFile:
    """One payload file as offered on the local connector."""

    name: str
    content_id: str
    sha256: str
    size: int

    @property
    def payload_item(self) -> str:
        """The manifest's payload item for it: the content id pinned to the file's sha256."""
        return f"{self.content_id}#sha256={self.sha256}"


async def offer_files(
    connector: Application, files: Sequence[Path], items: Sequence[PayloadItem]
) -> list[PushedFile]:
    """Put `files` (one per payload item, same order) into the content area; raises LanError
    or OSError. Hashing and copying run in a worker thread."""
    if len(files) != len(items):
        raise LanError(f"{len(files)} file(s) given for {len(items)} payload item(s)")
    offered = []
    for path, item in zip(files, items, strict=True):
        sha256, size = await asyncio.to_thread(file_digest, path)
        if item.sha256 is not None and item.sha256 != sha256:
            raise LanError(f"{item.filename} does not match the sha256 pinned in the manifest")
        pushed = PushedFile(path.name, content_id_for(path.name, sha256), sha256, size)
        existing = connector.content_item(pushed.content_id)
        if not (
            existing is not None
            and existing.tags.get(CONTENT_TAG) == CONTENT_TAG_VALUE
            and existing.tags.get("sha256") == sha256
            and existing.size == size
        ):
            target = depot(connector) / quote(pushed.content_id, safe="")
            await asyncio.to_thread(_place, path, target)
            for content_id in (pushed.content_id, pushed.payload_item):
                connector.add_content(
                    content_id,
                    target,
                    copy=False,
                    description=f"otatui LAN push of {pushed.name}",
                    tags={CONTENT_TAG: CONTENT_TAG_VALUE, "sha256": sha256},
                )
        offered.append(pushed)
    return offered


def prune_content(connector: Application) -> list[str]:
    """Remove the LAN-pushed content no device's current `config_otau` names; their ids."""
    referenced: set[str] = set()
    for device in connector.devices():
        resource = device.resources.get(CONFIG_OTAU)
        if resource is None or not resource.set_value:
            continue
        parsed = parse_manifest(resource.set_value)
        if isinstance(parsed, Manifest):
            for named in parsed.items:
                if named.content_id is not None:
                    referenced.update((named.content_id, named.raw))
    ours = depot(connector).resolve()
    removed = []
    dropped: set[Path] = set()
    for item in connector.contents():
        if item.tags.get(CONTENT_TAG) != CONTENT_TAG_VALUE or item.id in referenced:
            continue
        connector.remove_content(item.id)
        removed.append(item.id)
        if item.path.parent == ours:
            dropped.add(item.path)
    for path in dropped - {c.path for c in connector.contents()}:  # no item serves it now
        with contextlib.suppress(OSError):
            path.unlink()
    return removed


def depot(connector: Application) -> Path:
    """The folder of the LAN-pushed files, inside the connector's content directory."""
    return connector.content.directory / DEPOT_DIR


def content_id_for(name: str, sha256: str) -> str:
    """The content id of file `name` with this sha256: `fw.bin` -> `fw-<16 hex>.bin`."""
    base = re.sub(r"\.{2,}", ".", safe_filename(name)).lstrip(".") or "payload"
    candidate = fit_filename(base, f"-{sha256[:_SHA_CHARS]}")
    try:
        item = parse_payload_item(candidate)
    except PayloadItemError:
        return f"payload-{sha256[:_SHA_CHARS]}"
    if item.source is not PayloadSource.CONTENT or item.content_id != candidate:
        return f"payload-{sha256[:_SHA_CHARS]}"
    return candidate


def rewrite_manifest(manifest: Manifest, items: Sequence[str]) -> str:
    """The manifest text with its payload items replaced by `items` (same count, same order),
    every other key kept in order. A manifest without files (JSON type) is returned byte for
    byte. Raises LanError."""
    if not manifest.items:
        return manifest.raw
    if len(items) != len(manifest.items):
        raise LanError(f"{len(items)} item(s) for {len(manifest.items)} payload item(s)")
    data = json.loads(manifest.raw.removeprefix("\ufeff"))
    data["payload"] = items[0] if manifest.type is ManifestType.FILE else list(items)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    parsed = parse_manifest(text)
    if not isinstance(parsed, Manifest):
        raise LanError(f"the rewritten manifest is not valid: {parsed.reason}")
    if parsed.version != manifest.version or len(parsed.items) != len(items):
        raise LanError("the rewritten manifest does not match the original")
    return text


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (a copy across file systems), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError as exc:
        if exc.errno not in _LINK_FALLBACK:
            raise
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
