"""Benchmark: a fleet of simulated MQTT agents in ONE ``otatui run --headless`` process.

    .venv/bin/python -m bench.fleet [--devices 1000] [--small 10] [--timeout 600]

The local connector (:class:`otatui.connector.Connector`) runs in this process with ``--devices``
provisioned devices (known random tokens) and one small content file. A generated config makes
every device an MQTT agent with ``installed_version = "1.0.0"`` and the install hook ``true``.
``otatui run --headless`` is started as a child process; then:

1. **start-up**: until every device has reported ``1.0.0 INSTALLED_VERSION`` (read from the
   connector's record of ``otau_in``);
2. **update**: every device is offered a manifest ``1.1.0`` (one pinned content file) at once,
   until every device has reported ``1.1.0 INSTALLED_VERSION``; reports per second = the
   ``otau_in`` reports of 1.1.0 received by the connector / the update time.

Peak RSS (``VmHWM``) and the thread count (sampled every 0.1 s, maximum kept) of the otatui
process are read from ``/proc``. The same run with ``--small`` devices shows whether threads
grow with devices. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otatui.connector import Connector

OTATUI = str(Path(sys.executable).with_name("otatui"))
CONTENT_ID = "app_1.1.0.bin"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from ``/proc/<pid>/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """``VmHWM``/``VmRSS`` (KiB) and ``Threads`` of a live process."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def write_config(
    path: Path, connector: Connector, tokens: dict[str, str], work: Path, installs: int | None
) -> None:
    lines = [
        'site = "fleet benchmark"',
        "[connector]",
        f'url = "{connector.http_url}"',
        f'mqtt_url = "{connector.mqtt_url}"',
        "insecure = true",
        "[paths]",
        f'data_dir = "{work / "data"}"',
        f'cache_dir = "{work / "cache"}"',
    ]
    if installs is not None:
        lines += ["[limits]", f"concurrent_installs = {installs}"]
    for n, (identity, token) in enumerate(tokens.items(), 1):
        lines += [
            "[[devices]]",
            f'name = "dev{n:05d}"',
            f'identity = "{identity}"',
            f'token = "{token}"',
            'protocol = "mqtt"',
            'role = "agent"',
            'installed_version = "1.0.0"',
            'install_command = ["true"]',
        ]
    path.write_text("\n".join(lines) + "\n")


class Watch:
    """Which devices have reported a given (version, status), from the connector's records."""

    def __init__(self, connector: Connector, identities: Sequence[str]) -> None:
        self.connector = connector
        self.identities = list(identities)

    def missing(self, version: str, status: str, among: set[str]) -> set[str]:
        left = set()
        for identity in among:
            for report in self.connector.reports(identity, "otau_in"):
                data = json.loads(report.value)
                if data.get("version") == version and data.get("status") == status:
                    break
            else:
                left.add(identity)
        return left

    async def until(self, version: str, status: str, deadline: float, proc: Any) -> float:
        start = time.perf_counter()
        left = set(self.identities)
        while left:
            if proc.returncode is not None:
                raise SystemExit(f"otatui exited with {proc.returncode} during the fleet bench")
            if time.monotonic() > deadline:
                raise SystemExit(f"fleet: {len(left)} devices never reported {version} {status}")
            await asyncio.sleep(0.1)
            left = self.missing(version, status, left)
        return time.perf_counter() - start

    def count(self, version: str) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
        """Reports of ``version``: total, those that repeat an earlier report of the same device
        byte for byte (with both receive times and how they came), and how many per status."""
        total = 0
        repeats: list[dict[str, Any]] = []
        statuses: dict[str, int] = {}
        for identity in self.identities:
            seen: dict[str, Any] = {}
            for report in self.connector.reports(identity, "otau_in"):
                data = json.loads(report.value)
                if data.get("version") != version:
                    continue
                total += 1
                first = seen.get(report.value)
                if first is not None:
                    repeats.append(
                        {
                            "device": identity,
                            "value": report.value,
                            "first": [round(first.received_at, 3), first.via],
                            "again": [round(report.received_at, 3), report.via],
                        }
                    )
                seen.setdefault(report.value, report)
                status = str(data.get("status"))
                statuses[status] = statuses.get(status, 0) + 1
        return total, repeats, statuses


async def sample(pid: int, figures: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        status = proc_status(pid)
        figures["threads_max"] = max(figures.get("threads_max", 0), status.get("Threads", 0))
        figures["hwm_kib"] = max(figures.get("hwm_kib", 0), status.get("VmHWM", 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def fleet(
    devices: int,
    limit_s: float,
    work: Path,
    log: Any = print,
    *,
    installs: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    tokens = {f"bench{n:05d}": secrets.token_hex(20) for n in range(1, devices + 1)}
    body = os.urandom(4096)
    manifest = {
        "version": "1.1.0",
        "name": "bench",
        "type": "FILE",
        "payload": f"{CONTENT_ID}#sha256={hashlib.sha256(body).hexdigest()}",
    }
    async with Connector(devices=list(tokens.items())) as connector:
        connector.add_content(CONTENT_ID, body)
        config = work / "fleet.toml"
        write_config(config, connector, tokens, work, installs)
        env = {**os.environ, "XDG_CONFIG_HOME": str(work / "xdg")}
        deadline = time.monotonic() + limit_s
        out_fd = os.open(work / "out.jsonl", os.O_WRONLY | os.O_CREAT, 0o600)
        err_fd = os.open(work / "err.txt", os.O_WRONLY | os.O_CREAT, 0o600)
        t0 = time.perf_counter()
        try:
            command = [OTATUI, "--config", str(config), "run", "--headless"]
            if profile is not None:
                command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=out_fd, stderr=err_fd, env=env
            )
        finally:
            os.close(out_fd)
            os.close(err_fd)
        figures: dict[str, int] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(proc.pid, figures, stop))
        watch = Watch(connector, list(tokens))
        try:
            await watch.until("1.0.0", "INSTALLED_VERSION", deadline, proc)
            online_s = time.perf_counter() - t0
            log(f"fleet {devices}: all reported 1.0.0 after {online_s:.1f} s")
            threads_idle = proc_status(proc.pid).get("Threads", 0)
            cpu_before = cpu_seconds(proc.pid)
            own_before = time.process_time()
            for identity in tokens:
                connector.set_config_otau(identity, manifest)
            update_s = await watch.until("1.1.0", "INSTALLED_VERSION", deadline, proc)
            log(f"fleet {devices}: all reported 1.1.0 INSTALLED_VERSION in {update_s:.1f} s")
            end = proc_status(proc.pid)
            update_cpu = cpu_seconds(proc.pid) - cpu_before
            bench_cpu = time.process_time() - own_before
            reports, repeats, by_status = watch.count("1.1.0")
        finally:
            stop.set()
            await sampler
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    return {
        "devices": devices,
        "startup_s": online_s,
        "update_s": update_s,
        "reports": reports,
        "reports_per_s": reports / update_s,
        "repeated_reports": len(repeats),
        "repeated_examples": repeats[:3],
        "reports_by_status": by_status,
        "update_cpu_s": update_cpu,
        "connector_cpu_s": bench_cpu,
        "peak_rss_mib": max(figures.get("hwm_kib", 0), end.get("VmHWM", 0)) / 1024,
        "threads_max": figures.get("threads_max", 0),
        "threads_idle": threads_idle,
        "exit_code": proc.returncode,
    }


def run(
    devices: int = 1000,
    small: int = 10,
    timeout: float = 600.0,
    log: Any = print,
    *,
    installs: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """``installs``: ``[limits] concurrent_installs`` (default: the engine's); ``profile``:
    run otatui under cProfile (the big fleet only) and write its stats there."""
    result: dict[str, Any] = {"concurrent_installs": installs or "default"}
    for n in sorted({small, devices}):
        with tempfile.TemporaryDirectory(prefix="otatui-bench-fleet-") as tmp_name:
            result[str(n)] = asyncio.run(
                fleet(
                    n,
                    timeout,
                    Path(tmp_name),
                    log,
                    installs=installs,
                    profile=profile if n == devices else None,
                )
            )
    result["devices"] = devices
    result["small"] = small
    return result


def print_result(result: dict[str, Any]) -> None:
    print(
        f"{'devices':>8}{'start-up s':>12}{'update s':>10}{'reports':>9}{'reports/s':>11}"
        f"{'peak RSS MiB':>14}{'threads max':>13}{'idle':>6}{'otatui CPU s':>14}"
        f"{'connector CPU s':>17}"
    )
    for key in sorted((k for k in result if k.isdigit()), key=int):
        r = result[key]
        print(
            f"{r['devices']:>8}{r['startup_s']:>12.1f}{r['update_s']:>10.1f}{r['reports']:>9}"
            f"{r['reports_per_s']:>11.0f}{r['peak_rss_mib']:>14.1f}{r['threads_max']:>13}"
            f"{r['threads_idle']:>6}{r['update_cpu_s']:>14.1f}{r['connector_cpu_s']:>17.1f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--installs", type=int, default=None, help="concurrent_installs")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats file")
    args = parser.parse_args(argv)
    result = run(
        args.devices, args.small, args.timeout, installs=args.installs, profile=args.profile
    )
    print_result(result)


if __name__ == "__main__":
    main()
