"""The manifests the TUI has seen: one offer as received (`OfferedManifest`), one distinct
manifest with the devices that saw it (`ManifestView`), and every distinct manifest of one
version (`ManifestVersion`: a gateway's 2.1.0 and a pump's 2.1.0 are two manifests).

Plain dataclasses (no Textual), filled by `otatui.tui.state.FleetState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otatui.otau.payload import PayloadItem, PayloadItemError, parse_payload_item


@dataclass(slots=True)
class OfferedManifest:
    """A `config_otau` manifest as received (valid or not)."""

    version: str | None
    name: str = ""
    type: str = ""
    description: str = ""
    items: tuple[str, ...] = ()
    valid: bool = True
    reason: str = ""
    source: str = ""
    time: float = 0.0

    def payload(self) -> list[PayloadItem | PayloadItemError]:
        """The payload items parsed (source, host, file name, sha256 pin), or why not."""
        out: list[PayloadItem | PayloadItemError] = []
        for raw in self.items:
            try:
                out.append(parse_payload_item(raw))
            except PayloadItemError as exc:
                out.append(exc)
        return out


ManifestIdentity = tuple[str, str, tuple[str, ...], bool]
"""What tells two manifests of one version apart: name, type, payload items, validity."""


def manifest_identity(m: OfferedManifest) -> ManifestIdentity:
    return (m.name, m.type, m.items, m.valid)


@dataclass(slots=True)
class ManifestView:
    """One distinct manifest (see `manifest_identity`) and every device that has seen it:
    offered to, installed on, failed on."""

    version: str
    manifest: OfferedManifest
    first_seen: float
    last_seen: float
    offered_to: set[str] = field(default_factory=set)
    installed_on: set[str] = field(default_factory=set)
    failed_on: set[str] = field(default_factory=set)
    seen_by: set[str] = field(default_factory=set)  # every device it was ever offered to

    @property
    def current(self) -> bool:
        """Offered to at least one device right now."""
        return bool(self.offered_to)


@dataclass(slots=True)
class ManifestVersion:
    """Every distinct manifest offered with one version (a gateway's 2.1.0 and a pump's 2.1.0
    are two manifests); the device sets read here are the union over them."""

    version: str
    variants: dict[ManifestIdentity, ManifestView] = field(default_factory=dict)

    @property
    def views(self) -> list[ManifestView]:
        """Its manifests, by name then first seen."""
        return sorted(self.variants.values(), key=lambda v: (v.manifest.name, v.first_seen))

    @property
    def newest(self) -> ManifestView:
        return max(self.variants.values(), key=lambda v: v.last_seen)

    @property
    def manifest(self) -> OfferedManifest:
        """The manifest offered last with this version."""
        return self.newest.manifest

    @property
    def first_seen(self) -> float:
        return min(v.first_seen for v in self.variants.values())

    @property
    def last_seen(self) -> float:
        return max(v.last_seen for v in self.variants.values())

    @property
    def offered_to(self) -> set[str]:
        return set().union(*(v.offered_to for v in self.variants.values()))

    @property
    def installed_on(self) -> set[str]:
        return set().union(*(v.installed_on for v in self.variants.values()))

    @property
    def failed_on(self) -> set[str]:
        return set().union(*(v.failed_on for v in self.variants.values()))

    @property
    def seen_by(self) -> set[str]:
        return set().union(*(v.seen_by for v in self.variants.values()))

    @property
    def current(self) -> bool:
        return any(v.offered_to for v in self.variants.values())

    def view_for(self, device: str, offered: ManifestView | None = None) -> ManifestView:
        """The manifest of this version that `device` saw: its current offer when it is one
        of these, else the newest it was offered, else the newest of all."""
        if offered is not None and any(offered is v for v in self.variants.values()):
            return offered
        seen = [v for v in self.variants.values() if device in v.seen_by]
        return max(seen or self.variants.values(), key=lambda v: v.last_seen)
