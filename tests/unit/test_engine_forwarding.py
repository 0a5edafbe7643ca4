"""Store-and-forward decisions (`otatui.engine.forwarding`): when the fetched manifest is taken
up, which files are pinned, and which cloud delivery is a duplicate of offline work."""

from __future__ import annotations

from pathlib import Path

import pytest

from otatui.engine.forwarding import SETTLE_WINDOW_S, Forwarding
from otatui.murano.channel import ChannelState, LinkState
from otatui.otau.events import Boot, ManifestReceived
from otatui.otau.machine import UpdateMachine
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.store import PendingReport, Store

RAW = '{"version":"2.0.0","name":"fw","type":"URL_LIST","payload":["a.bin","b.bin#sha256=' + (
    "cc" * 32
) + '"]}'  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store.open(tmp_path / "otatui.db")
    try:
        yield s
    finally:
        s.close()


def forwarding(store: Store, clock: Clock, offline_after: float | None = 5.0) -> Forwarding:
    return Forwarding(name="s1", store=store, clock=clock, offline_after=offline_after)


def test_taken_up_only_offline_idle_new_and_unused(store: Store) -> None:
    clock = Clock()
    fw = forwarding(store, clock)
    machine = UpdateMachine("1.0.0")
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["aa" * 32, "cc" * 32])
    assert fw.candidate(machine) is None  # connecting, not yet failed
    fw.on_state(ChannelState(LinkState.BACKOFF, "refused", attempt=1))
    assert fw.candidate(machine) is None  # not long enough
    clock.now += 5
    got = fw.candidate(machine)
    assert got is not None and got.raw == RAW
    fw.on_state(ChannelState(LinkState.CONNECTING, attempt=1))  # trying again: still offline
    assert fw.candidate(machine) is not None
    # Connected: never.
    fw.on_state(ChannelState(LinkState.CONNECTED))
    clock.now += 100
    assert fw.candidate(machine) is None
    # Refused credentials are not "unreachable".
    fw.on_state(ChannelState(LinkState.AUTH_FAILED))
    clock.now += 100
    assert fw.candidate(machine) is None
    # A bridge only: offline_after None never takes it up.
    other = forwarding(store, clock, offline_after=None)
    other.on_state(ChannelState(LinkState.BACKOFF, attempt=3))
    clock.now += 100
    assert other.candidate(machine) is None


def test_not_taken_up_when_installed_busy_handled_or_used(store: Store) -> None:
    clock = Clock()
    fw = forwarding(store, clock)
    fw.on_state(ChannelState(LinkState.BACKOFF, attempt=1))
    clock.now += 10
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["aa" * 32, "cc" * 32])
    assert fw.candidate(UpdateMachine("2.0.0")) is None  # already installed
    busy = UpdateMachine("1.0.0")
    busy.handle(Boot(now=0))
    parsed = parse_manifest(RAW.replace("2.0.0", "3.0.0"))
    busy.handle(ManifestReceived(parsed=parsed, now=0))
    assert fw.candidate(busy) is None  # working on something else
    handled = UpdateMachine("1.0.0")
    handled.handle(ManifestReceived(parsed=parse_manifest(RAW), now=0))
    handled.handle(ManifestReceived(parsed=parse_manifest("{}"), now=0))  # aborts it
    assert fw.candidate(handled) is None  # the cloud delivered it before: not new work
    store.record_step(
        device="s1",
        reports=[PendingReport(resource="config_otau", value=RAW, source="mqtt")],
        snapshot=None,
        fetched_ack=RAW,
    )
    assert fw.candidate(UpdateMachine("1.0.0")) is None  # used once already


def test_pins_only_for_the_fetched_manifest_and_its_verified_files(store: Store) -> None:
    fw = forwarding(store, Clock())
    manifest = parse_manifest(RAW)
    assert isinstance(manifest, Manifest)
    assert fw.pins(manifest) == {}
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["aa" * 32, None])
    assert fw.pins(manifest) == {0: "aa" * 32}
    other = parse_manifest(RAW.replace("2.0.0", "2.0.1"))
    assert isinstance(other, Manifest) and fw.pins(other) == {}


def queue_ack(store: Store, at: float) -> int:
    done = store.record_step(
        device="s1",
        reports=[PendingReport(resource="config_otau", value=RAW, source="mqtt")],
        snapshot=None,
        time=at,
        fetched_ack=RAW,
    )
    return done[0].outbox_id


def test_the_cloud_delivering_the_offline_manifest_is_a_duplicate_once(store: Store) -> None:
    clock = Clock()
    fw = forwarding(store, clock)
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=[None, None])
    assert not fw.duplicate(RAW)  # never worked offline: a normal delivery
    queue_ack(store, clock.now)
    assert fw.duplicate(RAW)  # the ack still waits in the outbox
    assert not fw.duplicate(RAW)  # settled: the next identical delivery is a new offer


def test_a_delivery_soon_after_the_ack_reached_the_cloud_is_a_duplicate(store: Store) -> None:
    clock = Clock()
    fw = forwarding(store, clock)
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=[None, None])
    outbox_id = queue_ack(store, clock.now)
    store.confirm([outbox_id], clock.now + 1)
    clock.now += SETTLE_WINDOW_S / 2
    assert fw.duplicate(RAW)


def test_a_delivery_long_after_the_ack_or_of_another_text_is_not(store: Store) -> None:
    clock = Clock()
    fw = forwarding(store, clock)
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=[None, None])
    outbox_id = queue_ack(store, clock.now)
    store.confirm([outbox_id], clock.now)
    clock.now += SETTLE_WINDOW_S + 1
    assert not fw.duplicate(RAW)
    fetched = store.get_fetched("s1")
    assert fetched is not None and not fetched.pending_settlement
    store.put_fetched(device="s1", raw=RAW + " ", version="2.0.0", files=[None, None])
    queue_ack2 = store.record_step(
        device="s1",
        reports=[PendingReport(resource="config_otau", value=RAW + " ", source="mqtt")],
        snapshot=None,
        fetched_ack=RAW + " ",
    )
    assert queue_ack2
    assert not fw.duplicate(RAW)  # another text: a new offer (and it settles the offline work)
    settled = store.get_fetched("s1")
    assert settled is not None and not settled.pending_settlement


def test_a_fetch_that_lacks_files_is_not_taken_up_and_says_so_once(store: Store) -> None:
    clock = Clock()
    notices: list[str] = []
    fw = Forwarding(name="s1", store=store, clock=clock, offline_after=1.0, notice=notices.append)
    fw.on_state(ChannelState(LinkState.BACKOFF, attempt=1))
    clock.now += 2
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["aa" * 32, None])
    machine = UpdateMachine("1.0.0")
    assert fw.candidate(machine) is None
    assert fw.candidate(machine) is None
    assert notices == [
        "the connector is unreachable and the fetched manifest 2.0.0 lacks b.bin:"
        " run 'otatui fetch' while online"
    ]
    store.put_fetched(device="s1", raw=RAW, version="2.0.0", files=["aa" * 32, "cc" * 32])
    assert fw.candidate(machine) is not None  # fetched again, complete
