"""Benchmark: otatui's payload download vs ``curl -o`` on loopback, from a local nginx.

    .venv/bin/python bench/download.py [--size-mib 256] [--rounds 5] [--naive]

Serves one file of ``--size-mib`` random bytes from Debian's nginx (``apt-get install
nginx-light``; started here on 127.0.0.1 with ``sendfile on``, stopped at the end) and fetches it,
alternating, with:

- ``curl -o FILE``   the peer: same bytes to disk, no hashing;
- ``curl -o /dev/null`` the loopback limit without any disk;
- ``otatui``         :class:`otatui.transfer.Downloader` in a fresh process with an empty cache,
                     sha256-pinned item (verified), written to the cache, fsynced;
- ``naive``          (with ``--naive``) httpx streaming with hash + write in the event loop.

Each transfer's time is read from nginx's access log (``$request_time``: first request byte to
the last response byte sent), so process start-up does not count. The wall time of each client
process and its peak RSS (``ru_maxrss`` of the child) are printed too. Medians of ``--rounds``.
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20

NGINX_CONF = """
worker_processes 1;
user root root;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format timing '$request_uri $status $body_bytes_sent $request_time';
    access_log {tmp}/access.log timing;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/tmp;
    proxy_temp_path {tmp}/tmp;
    fastcgi_temp_path {tmp}/tmp;
    uwsgi_temp_path {tmp}/tmp;
    scgi_temp_path {tmp}/tmp;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""

CHILD_OTATUI = """
import asyncio, resource, sys, time
from pathlib import Path
import httpx
from otatui.otau import parse_payload_item
from otatui.store import Store
from otatui.transfer import Downloader

async def main() -> None:
    url, sha, cache = sys.argv[1:4]
    store = Store.open(Path(cache) / "otatui.db")
    async with httpx.AsyncClient(timeout=60) as client:
        async with Downloader(client, store, Path(cache) / "cache") as d:
            got = await d.fetch(parse_payload_item(f"{url}#sha256={sha}"))
    assert got.sha256 == sha
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_time(log: Path, tag: str) -> float:
    for _ in range(100):
        for line in log.read_text().splitlines():
            uri, status, _sent, seconds = line.split()
            if uri.endswith(f"r={tag}"):
                if status != "200":
                    raise SystemExit(f"nginx answered {status} for {uri}")
                return float(seconds)
        time.sleep(0.02)
    raise SystemExit(f"no access-log line for {tag}")


def run_child(argv: list[str]) -> tuple[float, int]:
    """Run a client; its wall time and peak RSS (KiB)."""
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {out.stderr.strip()[-400:]}")
    parts = out.stdout.split()
    rss = int(parts[1]) if len(parts) >= 2 else 0
    return wall, rss


def curl_rss(argv: list[str]) -> tuple[float, int]:
    """curl through /usr/bin/time-like accounting: wait4 gives the child's rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr is not None:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"curl failed: {err.strip()[-400:]}")
    return wall, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--naive", action="store_true", help="also time a naive httpx loop")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    curl = shutil.which("curl")
    if not Path(nginx).exists() or curl is None:
        raise SystemExit("needs nginx (apt-get install nginx-light) and curl")

    with tempfile.TemporaryDirectory(prefix="otatui-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "www").mkdir()
        (tmp / "tmp").mkdir()
        data_file = tmp / "www" / "payload.bin"
        digest = hashlib.sha256()
        with open(data_file, "wb") as f:
            for _ in range(args.size_mib):
                block = os.urandom(MiB)
                digest.update(block)
                f.write(block)
        sha = digest.hexdigest()
        port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
        server = subprocess.Popen(
            [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                raise SystemExit("nginx did not start")
            url = f"http://127.0.0.1:{port}/payload.bin"
            log = tmp / "access.log"
            sides = [Side("curl -o FILE"), Side("curl -o /dev/null"), Side("otatui")]
            if args.naive:
                sides.append(Side("naive httpx"))
            # warm-up: file into the page cache, interpreters' bytecode compiled
            subprocess.run([curl, "-s", "-o", "/dev/null", f"{url}?r=warm"], check=True)
            for rnd in range(args.rounds):
                order = sides if rnd % 2 == 0 else list(reversed(sides))
                for side in order:
                    tag = f"{side.name.split()[0]}-{len(side.server_s)}-{rnd}-{id(side)}"
                    target = f"{url}?r={tag}"
                    out_dir = tmp / f"out-{tag}"
                    out_dir.mkdir()
                    if side.name == "curl -o FILE":
                        wall, rss = curl_rss([curl, "-s", "-o", str(out_dir / "f"), target])
                    elif side.name == "curl -o /dev/null":
                        wall, rss = curl_rss([curl, "-s", "-o", "/dev/null", target])
                    elif side.name == "otatui":
                        wall, rss = run_child(
                            [sys.executable, "-c", CHILD_OTATUI, target, sha, str(out_dir)]
                        )
                    else:
                        wall, rss = run_child(
                            [sys.executable, "-c", CHILD_NAIVE, target, sha, str(out_dir / "f")]
                        )
                    side.server_s.append(request_time(log, tag))
                    side.wall_s.append(wall)
                    side.rss_kib.append(rss)
                    shutil.rmtree(out_dir)
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(f"payload {args.size_mib} MiB, {args.rounds} rounds, nginx {nginx} on 127.0.0.1")
    print(
        f"{'client':<20}{'server MiB/s':>14}{'ratio':>8}{'wall MiB/s':>12}"
        f"{'peak RSS MiB':>14}  server times (s)"
    )
    peer = statistics.median(sides[0].server_s)
    for side in sides:
        med = statistics.median(side.server_s)
        wall = statistics.median(side.wall_s)
        rss = max(side.rss_kib) / 1024
        times = " ".join(f"{t:.3f}" for t in side.server_s)
        print(
            f"{side.name:<20}{args.size_mib / med:>14.0f}{peer / med:>8.2f}"
            f"{args.size_mib / wall:>12.0f}{rss:>14.1f}  {times}"
        )
    print("ratio = median server time of curl -o FILE / median server time of the client")


if __name__ == "__main__":
    main()
