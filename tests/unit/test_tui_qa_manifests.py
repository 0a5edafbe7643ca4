"""QA: manifests that share a version stay apart (each with its own devices)."""

from __future__ import annotations

from otatui.engine.events import ManifestReceived, ReportObserved
from otatui.tui.catalogue import manifest_groups
from otatui.tui.records import DeviceInfo
from otatui.tui.state import FleetState

NAMES = ("gateway-01", "pump-1", "sensor-1", "pump-2")


def fleet() -> FleetState:
    return FleetState(
        [DeviceInfo(name=n, identity=n, role="agent", protocol="mqtt") for n in NAMES],
        clock=lambda: 100.0,
    )


def offer(device: str, name: str, items: tuple[str, ...], t: float) -> ManifestReceived:
    return ManifestReceived(
        device=device, time=t, version="2.1.0", name=name, type="URL_LIST", items=items
    )


def report(device: str, status: str, t: float) -> ReportObserved:
    return ReportObserved(device=device, time=t, version="2.1.0", status=status)


def seeded() -> FleetState:
    s = fleet()
    s.apply(offer("gateway-01", "gateway firmware", ("a.bin", "b.bin", "c.bin"), 1.0))
    s.apply(offer("pump-1", "pump controller", ("pump.bin",), 2.0))
    s.apply(offer("pump-2", "pump controller", ("pump.bin",), 2.5))
    s.apply(offer("sensor-1", "sensor firmware", ("sensor.bin",), 3.0))
    s.apply(report("pump-1", "DOWNLOAD_ERROR", 4.0))
    s.apply(report("sensor-1", "INSTALLED_VERSION", 5.0))
    return s


def test_each_manifest_of_a_version_keeps_its_devices() -> None:
    s = seeded()
    version = s.manifests["2.1.0"]
    assert len(version.variants) == 3
    by_name = {v.manifest.name: v for v in version.views}
    assert by_name["gateway firmware"].manifest.items == ("a.bin", "b.bin", "c.bin")
    assert by_name["gateway firmware"].offered_to == {"gateway-01"}
    assert by_name["pump controller"].offered_to == {"pump-1", "pump-2"}
    assert by_name["pump controller"].failed_on == {"pump-1"}
    assert by_name["sensor firmware"].installed_on == {"sensor-1"}
    assert by_name["gateway firmware"].failed_on == set()
    # the version as a whole: the union
    assert version.offered_to == set(NAMES)
    assert version.failed_on == {"pump-1"}


def test_one_group_per_manifest_with_unique_keys() -> None:
    groups = manifest_groups(seeded().manifests.values(), each=True)
    assert [g.name for g in groups] == ["gateway firmware", "pump controller", "sensor firmware"]
    assert len({g.key for g in groups}) == 3
    assert all(g.version == "2.1.0" and g.shared == 3 for g in groups)
    assert [len(g.items) for g in groups] == [3, 1, 1]
    assert groups[1].failed_on == ("pump-1",)
    assert groups[2].installed_on == ("sensor-1",)
    # one group per version stays available (the version's devices, its newest manifest)
    (merged,) = manifest_groups(seeded().manifests.values())
    assert merged.key == "2.1.0" and len(merged.offered_to) == 4


def test_a_new_manifest_with_the_same_version_moves_the_device() -> None:
    s = seeded()
    s.apply(offer("pump-2", "pump controller", ("pump-b.bin",), 9.0))
    views = {v.manifest.items: v for v in s.manifests["2.1.0"].views}
    assert views[("pump.bin",)].offered_to == {"pump-1"}
    assert views[("pump-b.bin",)].offered_to == {"pump-2"}
    assert views[("pump.bin",)].seen_by == {"pump-1", "pump-2"}
