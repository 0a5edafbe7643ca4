"""Row models of the Manifests, Transfers and History screens, built from the fleet's records.

Pure Python (no Textual, no I/O): the screens only lay these rows out.

- `ManifestGroup`: one manifest offered to any device, current or past (one per version, or
  one per distinct manifest when several share a version: `manifest_groups(each=True)`): name, type,
  description, payload items (connector content vs external host, size, sha256 pin or unpinned,
  cache state), and the devices it is offered to, was offered to before, is installed on and
  failed on.
- `ContentRow`: one id of the connector's content list (``GET /provision/download``), with
  ``package_*`` ids marked and the versions whose manifests use it.
- `TransferRow`: one download or link push, active or recently finished, with rate and ETA.

The History screen's filter is `otatui.tui.history_filter.HistoryFilter`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from otatui.otau.payload import PayloadItem, PayloadItemError, PayloadSource
from otatui.transfer import CachedFile
from otatui.tui.backend import ContentEntry
from otatui.tui.records import FileTransfer, ManifestVersion, ManifestView

PACKAGE_PREFIX = "package_"


class CacheState(StrEnum):
    CACHED = "cached"
    MISSING = "not cached"
    UNKNOWN = "unknown"

    @property
    def marker(self) -> str:
        """A text marker that reads without colour."""
        return _CACHE_MARKERS[self]


_CACHE_MARKERS = {CacheState.CACHED: "✓", CacheState.MISSING: "✗", CacheState.UNKNOWN: "?"}


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What the local cache knows about one payload item."""

    state: CacheState
    size: int | None = None
    sha256: str | None = None


CachedLookup = Callable[[str, PayloadItem], CachedFile | None]
"""The backend's cache lookup: the usable cached file of an item for a device, or ``None``."""


def cache_info(lookup: CachedLookup | None, devices: Sequence[str], item: PayloadItem) -> CacheInfo:
    """Ask the cache through the first device that can (a content item needs a device's
    token); UNKNOWN without a lookup or a device."""
    if lookup is None or not devices:
        return CacheInfo(CacheState.UNKNOWN)
    for device in devices:
        found = lookup(device, item)
        if found is not None:
            return CacheInfo(CacheState.CACHED, found.size, found.sha256)
    return CacheInfo(CacheState.MISSING)


def combined(states: Iterable[CacheState]) -> CacheState:
    """CACHED when all are cached, MISSING when any is missing, else UNKNOWN (also for none)."""
    seen = set(states)
    if seen == {CacheState.CACHED}:
        return CacheState.CACHED
    return CacheState.MISSING if CacheState.MISSING in seen else CacheState.UNKNOWN


# -- manifests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayloadEntry:
    """One payload item of a manifest, as shown: never the query of a signed URL."""

    filename: str
    source: PayloadSource | None
    """``None`` when the item could not be parsed (see `problem`)."""
    where: str
    """The content id, or the external URL's host."""
    sha256: str | None
    """The pin from the URL fragment (``None``: unpinned)."""
    size: int | None
    cache: CacheState
    problem: str = ""
    """Why the item is unusable (one line), or ``""``."""

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None

    @property
    def pin_text(self) -> str:
        return f"sha256:{self.sha256[:12]}" if self.sha256 else "UNPINNED"

    @property
    def source_text(self) -> str:
        if self.source is None:
            return "invalid"
        return "content" if self.source is PayloadSource.CONTENT else "external"


def payload_entry(
    item: PayloadItem | PayloadItemError,
    lookup: CachedLookup | None,
    devices: Sequence[str],
    sizes: Mapping[str, int],
) -> PayloadEntry:
    """One item as shown; ``sizes`` maps content ids to their size on the connector."""
    if isinstance(item, PayloadItemError):
        return PayloadEntry("?", None, "?", None, None, CacheState.UNKNOWN, problem=str(item))
    info = cache_info(lookup, devices, item)
    size = info.size
    if size is None and item.content_id is not None:
        size = sizes.get(item.content_id)
    where = item.content_id if item.content_id is not None else (item.host or "?")
    return PayloadEntry(item.filename, item.source, where, item.sha256, size, info.state)


@dataclass(frozen=True, slots=True)
class ManifestGroup:
    """Everything known about one offered version."""

    version: str
    name: str
    type: str
    description: str
    items: tuple[PayloadEntry, ...]
    offered_to: tuple[str, ...]
    """Devices whose current offer is this version."""
    previously_offered: tuple[str, ...]
    """Devices that were offered it before and now have another offer (or none)."""
    installed_on: tuple[str, ...]
    failed_on: tuple[str, ...]
    first_seen: float
    last_seen: float
    valid: bool = True
    reason: str = ""
    key: str = ""
    """Tells the groups apart (a table row key): the version, plus the manifest's name (and a
    number) when several distinct manifests share the version."""
    shared: int = 1
    """How many distinct manifests carry this version."""

    @property
    def current(self) -> bool:
        return bool(self.offered_to)

    @property
    def cache(self) -> CacheState:
        """The cache state of all its files (UNKNOWN for a manifest without files)."""
        return combined(e.cache for e in self.items)

    @property
    def unpinned(self) -> int:
        return sum(1 for e in self.items if e.source is not None and not e.pinned)

    @property
    def size(self) -> int | None:
        """Total bytes of its files, when every size is known."""
        sizes = [e.size for e in self.items]
        if not sizes or any(s is None for s in sizes):
            return None
        return sum(s for s in sizes if s is not None)


def manifest_group(
    view: ManifestView | ManifestVersion,
    lookup: CachedLookup | None = None,
    sizes: Mapping[str, int] | None = None,
) -> ManifestGroup:
    """The group of one manifest (or of a version: its newest manifest with the devices of
    all); the cache is asked through the devices it is offered to (then those it was offered
    to before)."""
    m = view.manifest
    offered_to, seen_by = view.offered_to, view.seen_by
    offered = tuple(sorted(offered_to))
    asked = offered + tuple(sorted(seen_by - offered_to))
    return ManifestGroup(
        version=view.version,
        name=m.name,
        type=m.type,
        description=m.description,
        items=tuple(payload_entry(i, lookup, asked, sizes or {}) for i in m.payload()),
        offered_to=offered,
        previously_offered=tuple(sorted(seen_by - offered_to)),
        installed_on=tuple(sorted(view.installed_on)),
        failed_on=tuple(sorted(view.failed_on - view.installed_on)),
        first_seen=view.first_seen,
        last_seen=view.last_seen,
        valid=m.valid,
        reason=m.reason,
        key=view.version,
    )


def manifest_groups(
    views: Iterable[ManifestView | ManifestVersion],
    lookup: CachedLookup | None = None,
    sizes: Mapping[str, int] | None = None,
    *,
    each: bool = False,
) -> list[ManifestGroup]:
    """Every version seen: those offered now first, then the newest first.

    Given versions (`FleetState.manifests.values()`): one group per version by default (its
    newest manifest, the devices of all its manifests); with ``each`` one group per distinct
    manifest, a version's manifests next to each other by name, each with its own devices
    and a unique `ManifestGroup.key`.
    """
    if not each:
        groups = [manifest_group(v, lookup, sizes) for v in views if v.version]
        groups.sort(key=lambda g: (not g.current, -g.last_seen, g.version))
        return groups
    ranked: list[tuple[tuple[bool, float, str, str, float], ManifestGroup]] = []
    for v in views:
        if not v.version:
            continue
        members = v.views if isinstance(v, ManifestVersion) else [v]
        rank = (not v.current, -v.last_seen, v.version)
        keys: set[str] = set()
        for n, member in enumerate(members, start=1):
            g = manifest_group(member, lookup, sizes)
            if len(members) > 1:
                key = f"{g.version} · {g.name}" if g.name else f"{g.version} #{n}"
                if key in keys:
                    key = f"{key} #{n}"
                keys.add(key)
                g = replace(g, key=key, shared=len(members))
            ranked.append(((*rank, g.name, g.first_seen), g))
    ranked.sort(key=lambda r: r[0])
    return [g for _, g in ranked]


# -- connector content ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentRow:
    """One id of the connector's content list, as shown."""

    content_id: str
    size: int | None = None
    content_type: str = ""
    updated: float | None = None
    description: str = ""
    error: str = ""
    """Why its info could not be read, or ``""``."""
    used_by: tuple[str, ...] = ()
    """Versions whose manifests name this content id."""

    @property
    def package(self) -> bool:
        """A ``package_*`` id (uploaded as an OTA package)."""
        return self.content_id.startswith(PACKAGE_PREFIX)

    @property
    def marker(self) -> str:
        return "PKG" if self.package else "-"


def content_rows(
    entries: Sequence[ContentEntry], groups: Iterable[ManifestGroup] = ()
) -> list[ContentRow]:
    """The content list in the connector's order, with ``used_by`` from the manifests seen."""
    users: dict[str, list[str]] = {}
    for g in groups:
        for e in g.items:
            if e.source is PayloadSource.CONTENT:
                versions = users.setdefault(e.where, [])
                if g.version not in versions:
                    versions.append(g.version)
    out: list[ContentRow] = []
    for entry in entries:
        info = entry.info
        out.append(
            ContentRow(
                content_id=entry.content_id,
                size=info.size if info is not None else None,
                content_type=info.content_type if info is not None else "",
                updated=(info.updated or None) if info is not None else None,
                description=info.description if info is not None else "",
                error=entry.error,
                used_by=tuple(users.get(entry.content_id, ())),
            )
        )
    return out


def content_sizes(rows: Iterable[ContentRow]) -> dict[str, int]:
    return {r.content_id: r.size for r in rows if r.size is not None}


# -- transfers ------------------------------------------------------------------------------------


class TransferState(StrEnum):
    ACTIVE = "active"
    OK = "done"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def marker(self) -> str:
        return _TRANSFER_MARKERS[self]


_TRANSFER_MARKERS = {
    TransferState.ACTIVE: ">>",
    TransferState.OK: "ok",
    TransferState.FAILED: "!!",
    TransferState.STOPPED: "--",
}


@dataclass(frozen=True, slots=True)
class TransferRow:
    """One payload file going into the cache (download) or to a device (push)."""

    device: str
    direction: str
    """``download`` or ``push``."""
    file: str
    done: int
    total: int | None
    rate: float
    state: TransferState
    message: str = ""
    index: int = 0
    count: int = 1
    from_cache: bool = False
    updated: float = 0.0
    started: float = 0.0

    @classmethod
    def of(cls, t: FileTransfer) -> TransferRow:
        if not t.finished:
            state = TransferState.ACTIVE
        elif t.ok is None:
            state = TransferState.STOPPED
        else:
            state = TransferState.OK if t.ok else TransferState.FAILED
        done, total = t.done, t.total
        if state is TransferState.OK and t.size:
            done = total = t.size
        message = t.message or ("from the cache" if t.from_cache and t.ok else "")
        return cls(
            t.device, t.direction, t.file, done, total, t.rate, state,
            message, t.index, t.count, t.from_cache, t.updated, t.started,
        )  # fmt: skip

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.device, self.direction, self.file)

    @property
    def row_key(self) -> str:
        """Unique among the rows shown: the same file moved again later is another row."""
        return f"{self.device}\x1f{self.direction}\x1f{self.file}\x1f{self.started!r}"

    @property
    def fraction(self) -> float | None:
        if self.state is TransferState.OK:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (``None``: unknown or not running)."""
        if self.state is not TransferState.ACTIVE or not self.total or self.rate <= 0:
            return None
        return max(0, self.total - self.done) / self.rate

    @property
    def file_text(self) -> str:
        return self.file if self.count <= 1 else f"{self.file} ({self.index + 1}/{self.count})"


def transfer_rows(
    transfers: Iterable[FileTransfer], finished_limit: int = 200
) -> list[TransferRow]:
    """Active ones first (in a stable order, so rows don't jump), then the most recently
    finished, newest first, at most ``finished_limit`` of them."""
    rows = [TransferRow.of(t) for t in transfers]
    active = sorted((r for r in rows if r.state is TransferState.ACTIVE), key=lambda r: r.key)
    finished = sorted(
        (r for r in rows if r.state is not TransferState.ACTIVE),
        key=lambda r: (-r.updated, r.key),
    )
    return active + finished[: max(0, finished_limit)]
