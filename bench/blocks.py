"""Benchmark: the building blocks of a verified download on this machine, one core each.

    .venv/bin/python -m bench.blocks [--size-mib 1024] [--rounds 3]

- ``sha256``: ``hashlib.sha256().update`` over 4 MiB buffers (OpenSSL; SHA-NI where the CPU
  has it): the floor of any client that verifies a sha256 pin, since one stream's hash cannot
  be split across cores;
- ``write``: 4 MiB ``os.write`` calls into a new file through the page cache, then ``fsync``;
- ``write O_DIRECT``: the same through an ``O_DIRECT`` descriptor (what the download pump uses
  for full aligned buffers), skipped where the file system refuses it.

Files go to a temporary directory under ``--dir`` (default: the system's temp dir) and are
deleted. Medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MiB = 1 << 20
BLOCK = 4 * MiB


def hash_rate(size_mib: int, block: mmap.mmap) -> float:
    digest = hashlib.sha256()
    view = memoryview(block)
    t0 = time.perf_counter()
    for _ in range(size_mib * MiB // BLOCK):
        digest.update(view)
    seconds = time.perf_counter() - t0
    view.release()
    return size_mib / seconds


def write_rate(path: Path, size_mib: int, block: mmap.mmap, direct: bool) -> tuple[float, float]:
    """MiB/s of the writes, and seconds of the final fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (getattr(os, "O_DIRECT", 0) if direct else 0)
    fd = os.open(path, flags, 0o600)
    try:
        t0 = time.perf_counter()
        for _ in range(size_mib * MiB // BLOCK):
            os.write(fd, block)
        t1 = time.perf_counter()
        os.fsync(fd)
        t2 = time.perf_counter()
    finally:
        os.close(fd)
        path.unlink()
    return size_mib / (t1 - t0), t2 - t1


def direct_possible(directory: Path) -> bool:
    if not getattr(os, "O_DIRECT", 0):
        return False
    probe = directory / "probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return True


def run(size_mib: int = 1024, rounds: int = 3, directory: str | None = None) -> dict[str, Any]:
    block = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
    block.write(os.urandom(BLOCK))
    sides: dict[str, list[float]] = {"sha256": [], "write": [], "write O_DIRECT": []}
    fsync: dict[str, list[float]] = {"write": [], "write O_DIRECT": []}
    with tempfile.TemporaryDirectory(prefix="otatui-bench-blocks-", dir=directory) as tmp:
        work = Path(tmp)
        direct = direct_possible(work)
        for _ in range(rounds):
            sides["sha256"].append(hash_rate(size_mib, block))
            for name, flag in (("write", False), ("write O_DIRECT", True)):
                if flag and not direct:
                    continue
                rate, sync = write_rate(work / "w.bin", size_mib, block, flag)
                sides[name].append(rate)
                fsync[name].append(sync)
    block.close()
    return {
        "size_mib": size_mib,
        "rounds": rounds,
        "mib_per_s": sides,
        "fsync_s": fsync,
        "median_mib_per_s": {k: statistics.median(v) for k, v in sides.items() if v},
        "direct_io": direct,
        "load": os.getloadavg(),
    }


def print_result(result: dict[str, Any]) -> None:
    for name, values in result["mib_per_s"].items():
        if not values:
            print(f"{name:<16} skipped (O_DIRECT refused here)")
            continue
        sync = result["fsync_s"].get(name)
        extra = f", fsync {statistics.median(sync):.2f} s" if sync else ""
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:<16}{statistics.median(values):>8.0f} MiB/s   ({runs}{extra})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: temp dir)")
    args = parser.parse_args(argv)
    print_result(run(args.size_mib, args.rounds, args.dir))


if __name__ == "__main__":
    main()
