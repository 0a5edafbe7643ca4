"""Store-and-forward for a bridged device: work from the fetched manifest while offline.

On site the connector is often unreachable. `otatui fetch`, run while online, keeps each device's
current manifest (the exact text) and verifies its files into the cache. A bridge session whose
channel has failed to reach the connector for `offline_after` seconds, while idle, then works
from that manifest as if the cloud had just delivered it:

- the manifest's history row says source "cache";
- its acknowledgement is not written live: it is queued in the outbox, with its original time,
  before the reports it leads to (the store marks the fetched manifest used in the same
  transaction);
- unpinned payload files are pinned to the sha256 `fetch` verified, so the push runs from the
  cache however long ago the fetch was (`Forwarding.pins`); a fetched manifest whose files were
  not all fetched is not taken up (it could only fail): the technician is told once instead;
- every report waits in the outbox with its original time; the outbox pump sends the backlog
  by itself, in order, as timestamped batches, once the connector is back.

Back online, the cloud still holds that manifest unacknowledged and delivers it: that delivery is
a duplicate of work already done, so it is acknowledged again and nothing else (no restart, no
extra report). It counts as a duplicate while the queued acknowledgement has not reached the
cloud, or reached it less than `SETTLE_WINDOW_S` ago; later, the same text is a new offer (an
operator offering the same package again) and is handled as usual. The first delivery after the
offline work settles it either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from otatui.murano.channel import ChannelState, LinkState
from otatui.otau.machine import UpdateMachine
from otatui.otau.manifest import Manifest, parse_manifest
from otatui.otau.snapshot import MachineSnapshot, Phase
from otatui.store import FetchedManifest, Store

SETTLE_WINDOW_S = 60.0
OFFLINE_AFTER_S = 5.0


class Forwarding:
    """One bridged device's store-and-forward state (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        store: Store,
        clock: Callable[[], float],
        offline_after: float | None,
        notice: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.name = name
        self.notice = notice  # tells the technician why the fetched manifest is not used
        self._noticed: set[str] = set()
        self.store = store
        self.clock = clock
        self.offline_after = offline_after
        self._down_since: float | None = clock()
        self._failed = False
        self._state = LinkState.CONNECTING

    # -- connection ----------------------------------------------------------------------------

    def on_state(self, state: ChannelState) -> None:
        if state.state is LinkState.CONNECTED:
            self._down_since, self._failed = None, False
        elif self._down_since is None:
            self._down_since = self.clock()
        if state.state is LinkState.BACKOFF:
            self._failed = True  # an attempt failed (reconnecting after it still counts)
        self._state = state.state

    @property
    def offline(self) -> bool:
        """Not connected for `offline_after` s, with at least one failed attempt (refused
        credentials or a stopped channel are not "unreachable")."""
        if self.offline_after is None or self._down_since is None or not self._failed:
            return False
        if self._state not in (LinkState.BACKOFF, LinkState.CONNECTING):
            return False
        return self.clock() - self._down_since >= self.offline_after

    # -- offline work --------------------------------------------------------------------------

    def candidate(self, machine: UpdateMachine) -> FetchedManifest | None:
        """The fetched manifest to work from now, if offline, idle and it is new work."""
        if not self.offline or machine.phase is not Phase.IDLE:
            return None
        fetched = self.store.get_fetched(self.name)
        if fetched is None or fetched.used_at is not None:
            return None
        parsed = parse_manifest(fetched.raw)
        if not isinstance(parsed, Manifest) or parsed.version == machine.installed_version:
            return None
        if MachineSnapshot.from_data(machine.snapshot()).last_raw == fetched.raw:
            return None  # already handled (delivered by the cloud before)
        missing = [
            item.filename
            for i, item in enumerate(parsed.items)
            if i >= len(fetched.files) or fetched.files[i] is None
        ]
        if missing:  # it would only fail: leave it for a complete fetch, and say so once
            if fetched.raw not in self._noticed:
                self._noticed.add(fetched.raw)
                self.notice(
                    f"the connector is unreachable and the fetched manifest {parsed.version}"
                    f" lacks {', '.join(missing)}: run 'otatui fetch' while online"
                )
            return None
        return fetched

    def pins(self, manifest: Manifest) -> Mapping[int, str]:
        """sha256 of the files `fetch` verified, by index, when `manifest` is the fetched one."""
        fetched = self.store.get_fetched(self.name)
        if fetched is None or fetched.raw != manifest.raw:
            return {}
        return {i: sha for i, sha in enumerate(fetched.files) if sha is not None}

    # -- back online ---------------------------------------------------------------------------

    def duplicate(self, raw: str) -> bool:
        """Whether a value the cloud delivered repeats the manifest already worked offline
        (acknowledge it, nothing more). Any delivery settles the offline work."""
        fetched = self.store.get_fetched(self.name)
        if fetched is None or not fetched.pending_settlement:
            return False
        now = self.clock()
        self.store.settle_fetched(self.name, now)
        if fetched.raw != raw:
            return False
        ack = (
            self.store.get_history(fetched.ack_history_id)
            if fetched.ack_history_id is not None
            else None
        )
        if ack is None or ack.delivered_at is None:
            return True
        return now - ack.delivered_at < SETTLE_WINDOW_S
