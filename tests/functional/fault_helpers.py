"""Shared pieces of the fault, bad-input and security suites (helper FAULT's area).

- `FAULT_HOOK`: an install hook whose behaviour follows the offered version's name
  (`...-hang` never ends, `...-crash` dies by SIGSEGV, `...-slow` prints steps for a while,
  `...-daemon` leaves a service running that holds its stdout);
  any other version records what it got, like `engine_helpers.HOOK`.
- `running_fleet`: the engine in-process against a connector, its events collected.
- `assert_delivered_once`: the connector's `otau_in` record equals the store's history of sent
  reports, in order, once each, and nothing waits in the outbox.
- `stop_mqtt_listener` / `start_mqtt_listener`: take the connector's MQTT listener away and
  bring it back on the same port (the HTTP side keeps running).
- `make_ca`: a throw-away CA and a server certificate it signed, with the `openssl` CLI.
- `headless`: a started `otatui run --headless` process, killed on the way out if it still runs.
- `site_customization`: a folder to put on PYTHONPATH of an `otatui` process so that it runs
  with a file-size limit (`OTATUI_TEST_FSIZE`) and/or logs everything to stderr
  (`OTATUI_TEST_DEBUG_LOG`).
- `site_config` (from engine_helpers) and `eventually` (from wait_helpers) are re-exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

from engine_helpers import agent, wait_status
from engine_helpers import site_config as site_config  # re-exported for the fault suites
from headless_helpers import Otatui
from wait_helpers import eventually as eventually  # re-exported for the fault suites

from otatui.config import load_config
from otatui.connector import Connector
from otatui.engine.events import Event, EventBus
from otatui.engine.fleet import Fleet
from otatui.store import StoreReader

FAULT_HOOK = r"""
import hashlib, json, os, pathlib, signal, sys, time
version = os.environ["OTATUI_VERSION"]
if version.endswith("-hang"):
    print("flashing, this takes forever", flush=True)
    time.sleep(3600)
if version.endswith("-crash"):
    print("flashing", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
if version.endswith("-daemon"):
    # (Re)start a service that inherits stdout and outlives the hook, as install scripts do.
    import subprocess
    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pathlib.Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(sys.argv[1]) / "service.pid").write_text(str(service.pid))
    print("service started", flush=True)
if version.endswith("-slow"):
    for i in range(10):
        print("flash step", i, flush=True)
        time.sleep(0.15)
files = [f for f in os.environ.get("OTATUI_FILES", "").split("\n") if f]
out = {
    "files": {pathlib.Path(f).name: hashlib.sha256(pathlib.Path(f).read_bytes()).hexdigest()
              for f in files},
    "paths": files,
    "cwd": os.getcwd(),
    "listing": sorted(os.listdir(".")),
}
target = pathlib.Path(sys.argv[1])
target.mkdir(parents=True, exist_ok=True)
(target / (version + ".json")).write_text(json.dumps(out))
"""


def fault_agent(
    name: str, identity: str, protocol: str, record_dir: Path, *, timeout: float = 30
) -> dict[str, object]:
    """A `[[devices]]` agent running `FAULT_HOOK`."""
    device = agent(name, identity, protocol, record_dir)
    device["install_command"] = [sys.executable, "-c", FAULT_HOOK, str(record_dir)]
    device["install_timeout"] = timeout
    return device


@contextlib.asynccontextmanager
async def running_fleet(config_file: Path) -> AsyncIterator[tuple[Fleet, list[Event]]]:
    """The fleet of `config_file` started in this loop; yields it and the events it published."""
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    fleet = Fleet(load_config(config_file), bus=bus, request_timeout_ms=5_000)
    await fleet.__aenter__()
    try:
        fleet.start()
        yield fleet, seen
    finally:
        try:
            await asyncio.wait_for(fleet.aclose(), 15)
        except TimeoutError:
            raise AssertionError("the fleet did not stop within 15 s") from None


@contextlib.asynccontextmanager
async def booted_agent(
    tmp_path: Path, connector: Connector, identity: str, protocol: str, *, timeout: float = 30
) -> AsyncIterator[tuple[Path, list[Event]]]:
    """One `FAULT_HOOK` agent "gw" running in-process, past its boot report; yields the folder
    its hook records into and the engine's events."""
    records = tmp_path / "records"
    device = fault_agent("gw", identity, protocol, records, timeout=timeout)
    async with running_fleet(site_config(tmp_path, connector, [device])) as (_fleet, seen):
        await wait_status(connector, identity, "1.0.0", "INSTALLED_VERSION")
        yield records, seen


def otau_in(connector: Connector, identity: str) -> list[dict[str, str]]:
    return [json.loads(r.value) for r in connector.reports(identity, "otau_in")]


def final_statuses(connector: Connector, identity: str, version: str) -> list[str]:
    """The final statuses the connector received for `version` (one per attempt)."""
    finals = {"INSTALLED_VERSION", "TEST_ERROR", "DOWNLOAD_ERROR", "INSTALL_ERROR"}
    finals.add("INSTALL_ABORTED")
    return [
        r["status"]
        for r in otau_in(connector, identity)
        if r["version"] == version and r["status"] in finals
    ]


def sent_history(db: Path, device: str) -> list[str]:
    """The `otau_in` values the store recorded as sent by `device`, in order."""
    with StoreReader.open_readonly(db) as reader:
        rows = reader.history(device=device, resource="otau_in", newest_first=False)
    return [r.value for r in rows if r.direction == "out"]


def assert_delivered_once(db: Path, connector: Connector, device: str, identity: str) -> None:
    """Every report of the history reached the connector exactly once, in order; none pending."""
    history = sent_history(db, device)
    received = [r.value for r in connector.reports(identity, "otau_in")]
    assert received == history, f"{device}: connector {received} != history {history}"
    with StoreReader.open_readonly(db) as reader:
        assert reader.count_pending(device) == 0, f"{device}: reports left in the outbox"


def assert_none_lost(
    db: Path, connector: Connector, device: str, identity: str, *, window: int = 10
) -> list[str]:
    """Every report of the history reached the connector, in order, and none is pending.

    Returns the extra copies the connector got: a report whose confirmation was lost (the
    connector had it, otatui was killed or cut off before it learnt so) is sent again. Each extra
    must repeat one of the `window` reports delivered just before it.
    """
    history = sent_history(db, device)
    received = [r.value for r in connector.reports(identity, "otau_in")]
    matched, extras = 0, []
    for value in received:
        if matched < len(history) and value == history[matched]:
            matched += 1
            continue
        recent = history[max(0, matched - window) : matched]
        assert value in recent, f"{device}: {value} was never recorded, or arrived out of order"
        extras.append(value)
    assert matched == len(history), f"{device}: never delivered: {history[matched:]}"
    with StoreReader.open_readonly(db) as reader:
        assert reader.count_pending(device) == 0, f"{device}: reports left in the outbox"
    return extras


def work_results(db: Path, device: str, version: str) -> list[str]:
    """How the work on `version` ended each time, from the store's history of sent reports:
    INSTALL_SUCCESS or an error status (boot reports of INSTALLED_VERSION do not count)."""
    ends = {"INSTALL_SUCCESS", "TEST_ERROR", "DOWNLOAD_ERROR", "INSTALL_ERROR", "INSTALL_ABORTED"}
    out = []
    for value in sent_history(db, device):
        report = json.loads(value)
        if report["version"] == version and report["status"] in ends:
            out.append(report["status"])
    return out


async def stop_mqtt_listener(connector: Connector) -> int:
    """Close the MQTT listener and its connections (the port then refuses); returns the port.

    The connector has no public per-listener stop, so this reaches into its server list.
    """
    port = connector.ports["mqtt"]
    for server in list(connector._servers):
        if any(s.getsockname()[1] == port for s in server.sockets):
            server.close()
            connector._servers.remove(server)
            async with asyncio.timeout(10):
                await connector.mqtt.close_connections()
                await server.wait_closed()
    return port


async def start_mqtt_listener(connector: Connector, port: int) -> None:
    """Listen for MQTT again on `port` (the same broker, so the same devices and values)."""
    server = await asyncio.start_server(connector.mqtt, connector.host, port)
    connector._servers.append(server)


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate and a server certificate/key it signed for 127.0.0.1 and localhost.

    Returns (ca.pem, server.pem, server.key). Uses the `openssl` command line (the project does
    not depend on the `cryptography` package).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
         "-subj", "/CN=otatui test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext)],
    ]  # fmt: skip
    for argv in steps:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    return ca, cert, key


# Read by Python at start-up (sitecustomize) in an `otatui` process whose PYTHONPATH holds it.
_SITECUSTOMIZE = textwrap.dedent(
    """
    import os
    if os.environ.get("OTATUI_TEST_FSIZE"):
        # A file-size limit; SIGXFSZ ignored, so a write past it fails with EFBIG.
        import resource, signal
        limit = int(os.environ["OTATUI_TEST_FSIZE"])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if os.environ.get("OTATUI_TEST_DEBUG_LOG"):
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
    """
)


def site_customization(directory: Path) -> Path:
    """A folder holding the test `sitecustomize.py` (put it on PYTHONPATH); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return directory


@contextlib.asynccontextmanager
async def headless(config: Path, env: dict[str, str]) -> AsyncIterator[Otatui]:
    """`otatui --config <config> run --headless`, started; SIGKILLed on the way out if it still
    runs (stop it yourself to check its exit code)."""
    process = Otatui(config, env)
    try:
        await process.start()
        yield process
    finally:
        if process.proc is not None and process.proc.returncode is None:
            await process.stop(signal.SIGKILL)
