"""Benchmark: otatui's payload download vs ``curl -o`` on loopback, from Debian's nginx.

    .venv/bin/python -m bench.download [--size-mib 1024] [--rounds 5] [--rss-sizes 64,4096]
                                       [--httpx] [--naive]

Serves a file of ``--size-mib`` from nginx on 127.0.0.1 (``sendfile on``; nginx-light is
installed with apt-get when missing) and fetches it, alternating the order every round, with:

- ``curl -o FILE``      the peer: the same bytes to disk, no hashing;
- ``curl -o /dev/null`` the loopback limit without any disk;
- ``otatui``            :class:`otatui.transfer.Downloader` in a fresh process with an empty
                        cache: sha256-pinned item (verified), written to the cache, fsynced;
- ``otatui httpx``      (``--httpx``) the same with ``raw=False``: bodies through httpx;
- ``naive httpx``       (``--naive``) httpx streaming with hash + write in the event loop.

Each transfer's time is nginx's ``$request_time`` (first request byte to last response byte
sent), so process start-up does not count; medians of ``--rounds``. Peak RSS is the client's
``ru_maxrss``. ``--rss-sizes`` downloads other sizes once with otatui alone, to show that the
peak RSS does not depend on the file size (a size is skipped when the disk lacks room for the
file twice over plus 1 GiB). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.nginx import Nginx, ensure_tools

MiB = 1 << 20
GiB = 1 << 30

CHILD_OTATUI = """
import asyncio, resource, sys, time
from pathlib import Path
import httpx
from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import Downloader

async def main() -> None:
    url, sha, cache, raw = sys.argv[1:5]
    store = Store.open(Path(cache) / "otatui.db")
    async with httpx.AsyncClient(timeout=60) as client:
        async with Downloader(client, store, Path(cache) / "cache", raw=raw == "raw") as d:
            got = await d.fetch(parse_payload_item(f"{url}#sha256={sha}"))
    assert got.sha256 == sha, "digest mismatch"
    store.close()

t0 = time.perf_counter()
asyncio.run(main())
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CHILD_NAIVE = """
import asyncio, hashlib, resource, sys, time
import httpx

async def main() -> None:
    url, sha, out = sys.argv[1:4]
    h = hashlib.sha256()
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("GET", url) as r:
            with open(out, "wb") as f:
                async for chunk in r.aiter_bytes():
                    h.update(chunk)
                    f.write(chunk)
    assert h.hexdigest() == sha

t0 = time.perf_counter()
asyncio.run(main())
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@dataclass
class Side:
    name: str
    server_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)

    def summary(self, size_mib: int) -> dict[str, Any]:
        median = statistics.median(self.server_s)
        return {
            "server_s": self.server_s,
            "wall_s": self.wall_s,
            "rss_kib": self.rss_kib,
            "median_s": median,
            "mib_per_s": size_mib / median,
            "peak_rss_mib": max(self.rss_kib) / 1024,
        }


def make_payload(path: Path, size_mib: int) -> str:
    """A file of ``size_mib`` MiB (a 16 MiB random block repeated) and its sha256."""
    import hashlib

    block = os.urandom(16 * MiB)
    digest = hashlib.sha256()
    left = size_mib * MiB
    with open(path, "wb") as f:
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def run_child(argv: list[str]) -> tuple[float, int]:
    """Run a Python client; its wall time and peak RSS (KiB, printed by itself)."""
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"client failed: {out.stderr.strip()[-400:]}")
    parts = out.stdout.split()
    return wall, int(parts[1]) if len(parts) >= 2 else 0


def run_curl(argv: list[str]) -> tuple[float, int]:
    """Run curl; its wall time and peak RSS from wait4's rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
    if proc.stderr is not None:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"curl failed: {err.strip()[-400:]}")
    return wall, usage.ru_maxrss


class Fetcher:
    """Runs one client of a side against nginx and records its figures."""

    def __init__(self, server: Nginx, curl: str, work: Path) -> None:
        self.server, self.curl, self.work = server, curl, work
        self.count = 0

    def fetch(self, side: Side, name: str, sha: str) -> None:
        self.count += 1
        tag = f"{self.count}"
        target = f"{self.server.url(name)}?r={tag}"
        out = self.work / f"out-{tag}"
        out.mkdir()
        try:
            if side.name == "curl -o FILE":
                wall, rss = run_curl([self.curl, "-s", "-o", str(out / "f"), target])
            elif side.name == "curl -o /dev/null":
                wall, rss = run_curl([self.curl, "-s", "-o", "/dev/null", target])
            elif side.name.startswith("otatui"):
                raw = "httpx" if side.name == "otatui httpx" else "raw"
                wall, rss = run_child(
                    [sys.executable, "-c", CHILD_OTATUI, target, sha, str(out), raw]
                )
            else:
                wall, rss = run_child(
                    [sys.executable, "-c", CHILD_NAIVE, target, sha, str(out / "f")]
                )
            side.server_s.append(self.server.request_time(tag))
            side.wall_s.append(wall)
            side.rss_kib.append(rss)
        finally:
            shutil.rmtree(out)


def room_for(directory: Path, size_mib: int) -> bool:
    """Room for the served file and one downloaded copy, plus 1 GiB to spare."""
    return shutil.disk_usage(directory).free >= 2 * size_mib * MiB + GiB


def run(
    size_mib: int = 1024,
    rounds: int = 5,
    rss_sizes: Sequence[int] = (64, 4096),
    *,
    httpx_side: bool = False,
    naive: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    nginx, curl = ensure_tools()
    result: dict[str, Any] = {"size_mib": size_mib, "rounds": rounds, "nginx": nginx}
    with tempfile.TemporaryDirectory(prefix="otatui-bench-dl-") as tmp_name:
        tmp = Path(tmp_name)
        www = tmp / "www"
        www.mkdir()
        if not room_for(tmp, size_mib):
            raise SystemExit(f"not enough disk space in {tmp} for {size_mib} MiB twice over")
        log(f"download: writing a {size_mib} MiB payload ...")
        sha = make_payload(www / "payload.bin", size_mib)
        sides = [Side("curl -o FILE"), Side("curl -o /dev/null"), Side("otatui")]
        if httpx_side:
            sides.append(Side("otatui httpx"))
        if naive:
            sides.append(Side("naive httpx"))
        with Nginx(www, nginx) as server:
            fetcher = Fetcher(server, curl, tmp)
            subprocess.run(  # warm-up: the file into the page cache
                [curl, "-s", "-o", "/dev/null", server.url("payload.bin") + "?r=warm"], check=True
            )
            for rnd in range(rounds):
                order = sides if rnd % 2 == 0 else list(reversed(sides))
                for side in order:
                    fetcher.fetch(side, "payload.bin", sha)
                log(
                    f"download: round {rnd + 1}/{rounds}: "
                    + ", ".join(f"{s.name} {s.server_s[-1]:.3f} s" for s in sides)
                )
            result["sides"] = {side.name: side.summary(size_mib) for side in sides}
            peer = result["sides"]["curl -o FILE"]["median_s"]
            limit = result["sides"]["curl -o /dev/null"]["median_s"]
            ours = result["sides"]["otatui"]["median_s"]
            result["ratio_vs_curl_o"] = peer / ours
            result["ratio_vs_devnull"] = limit / ours
            rss: dict[str, Any] = {str(size_mib): result["sides"]["otatui"]["peak_rss_mib"]}
            notes: list[str] = []
            (www / "payload.bin").unlink()
            for extra in rss_sizes:
                if extra == size_mib:
                    continue
                if not room_for(tmp, extra):
                    free = shutil.disk_usage(tmp).free / GiB
                    notes.append(f"{extra} MiB skipped: {free:.1f} GiB free in {tmp}")
                    rss[str(extra)] = None
                    continue
                log(f"download: {extra} MiB once with otatui, for its peak RSS ...")
                name = f"payload-{extra}.bin"
                extra_sha = make_payload(www / name, extra)
                subprocess.run(
                    [curl, "-s", "-o", "/dev/null", server.url(name) + "?r=warm2"], check=True
                )
                side = Side("otatui")
                fetcher.fetch(side, name, extra_sha)
                rss[str(extra)] = side.rss_kib[0] / 1024
                result.setdefault("other_sizes", {})[str(extra)] = side.summary(extra)
                (www / name).unlink()
            result["peak_rss_mib_by_size"] = rss
            result["notes"] = notes
    return result


def print_result(result: dict[str, Any]) -> None:
    size = result["size_mib"]
    print(f"payload {size} MiB, {result['rounds']} rounds, {result['nginx']} on 127.0.0.1")
    print(
        f"{'client':<20}{'MiB/s':>8}{'median s':>10}{'vs curl -o':>12}"
        f"{'peak RSS MiB':>14}  server times (s)"
    )
    peer = result["sides"]["curl -o FILE"]["median_s"]
    for name, side in result["sides"].items():
        times = " ".join(f"{t:.3f}" for t in side["server_s"])
        print(
            f"{name:<20}{side['mib_per_s']:>8.0f}{side['median_s']:>10.3f}"
            f"{peer / side['median_s']:>12.2f}{side['peak_rss_mib']:>14.1f}  {times}"
        )
    sizes = ", ".join(
        f"{k} MiB: " + ("skipped" if v is None else f"{v:.1f} MiB")
        for k, v in sorted(result["peak_rss_mib_by_size"].items(), key=lambda kv: int(kv[0]))
    )
    print(f"otatui peak RSS by file size: {sizes}")
    for note in result["notes"]:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-sizes", default="64,4096", help="comma-separated MiB, or ''")
    parser.add_argument("--httpx", action="store_true", help="also time otatui with raw=False")
    parser.add_argument("--naive", action="store_true", help="also time a naive httpx loop")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.rss_sizes.split(",") if s.strip()]
    result = run(args.size_mib, args.rounds, sizes, httpx_side=args.httpx, naive=args.naive)
    print_result(result)


if __name__ == "__main__":
    main()
