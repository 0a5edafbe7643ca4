"""Benchmark: otatui's YMODEM push vs lrzsz's ``sz --ymodem`` into ``rz --ymodem`` over a pty.

    .venv/bin/python bench/ymodem.py [--size-mib 16] [--rounds 3] [--cap-s 120] [--sz-args=-k]

Each round pushes one file of ``--size-mib`` random bytes over a fresh pty pair (raw mode)
into Debian's ``rz --ymodem`` (on the slave, in a temp folder), alternating the order of:

- ``otatui``: :func:`otatui.links.ymodem.send` in this process (asyncio, an ``FdPort`` on the
  pty master), with its defaults (1K blocks, CRC-16, ``pace`` 0.2 ms);
- ``sz``: ``sz --ymodem -k`` (1K blocks, the same framing; ``--sz-args ''`` for plain
  ``sz --ymodem``, which sends 128-byte blocks) on the pty master.

The time of a round runs from starting ``rz`` until ``rz`` exits, so both sides include rz's
own fixed delays (about 1 s before its first "C", 1 s of silence it waits for after an EOT,
1 s before asking for the next file). The received file is compared with the sent one. A
round that has not finished after ``--cap-s`` seconds is stopped and its rate is taken from
the bytes rz had written by then or, when larger, what sz reports as sent and acknowledged (rz
writes in 128 KiB chunks); such rounds are marked ``capped``. Prints MiB/s (medians) for both
and the ratio (goal ≥ 0.9), and, for reference, otatui's sender into otatui's receiver (a child
process on the pty slave, its Python start-up included in the time), which has no such flush.

Why ``sz`` is slow here: after each ACK, ``rz`` flushes its input (TCIFLUSH); a block written
in that window is lost and costs rz's 5-13 s timeout. ``sz`` answers an ACK within tens of
microseconds and loses blocks every few dozen. otatui's sender pauses ``pace`` before each
block and repeats a block whose ACK is late (see :mod:`otatui.links.ymodem`), so a lost block
costs it ~0.1 s. ``--pace 0`` shows otatui without the pause.

Not part of ``make test``; ``python -m bench`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `otatui` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from otatui.links import ymodem
from otatui.links.byte_port import FdPort

MiB = 1 << 20


@dataclass
class Round:
    seconds: float
    received: int
    capped: bool
    identical: bool

    def mib_s(self) -> float:
        return self.received / MiB / self.seconds if self.seconds > 0 else 0.0


@contextlib.contextmanager
def _pty() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _start(args: list[str], fd: int, cwd: Path, err: Path) -> subprocess.Popen[bytes]:
    with err.open("wb") as err_file:
        return subprocess.Popen(
            args, stdin=fd, stdout=fd, stderr=err_file, cwd=cwd, start_new_session=True
        )


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _result(src: Path, out: Path, seconds: float, capped: bool, size: int) -> Round:
    got = out / src.name
    received = got.stat().st_size if got.exists() else 0
    identical = not capped and received == size and got.read_bytes() == src.read_bytes()
    return Round(seconds, received, capped, identical)


def run_sz(src: Path, work: Path, sz_args: Sequence[str], cap_s: float) -> Round:
    out = Path(tempfile.mkdtemp(dir=work, prefix="rz-"))
    with _pty() as (master, slave):
        start = time.monotonic()
        rz = _start(["rz", "--ymodem"], slave, out, work / "rz.err")
        sz = _start(["sz", "--ymodem", *sz_args, str(src)], master, work, work / "sz.err")
        os.close(slave)
        capped = False
        try:
            rz.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            capped = True
        seconds = time.monotonic() - start
        _stop(sz, rz)
    result = _result(src, out, seconds, capped, src.stat().st_size)
    if capped:  # rz writes in 128 KiB chunks: sz's own count of acknowledged data is finer
        result.received = max(result.received, _sz_acknowledged(work / "sz.err"))
    shutil.rmtree(out, ignore_errors=True)
    return result


def _sz_acknowledged(err: Path) -> int:
    """Bytes sz reports as sent and acknowledged ("Ymodem sectors/kbytes sent: 3076/384k")."""
    counts = re.findall(r"kbytes sent:\s*\d+/\s*(\d+)k", err.read_text(errors="replace"))
    return int(counts[-1]) * 1024 if counts else 0


def run_ours(src: Path, work: Path, pace: float, cap_s: float) -> Round:
    out = Path(tempfile.mkdtemp(dir=work, prefix="rz-"))

    async def push(master: int, rz: subprocess.Popen[bytes]) -> bool:
        port = FdPort(master, name="pty master", owns_fd=False)
        try:
            async with asyncio.timeout(cap_s):
                await ymodem.send(port, [(src.name, src)], pace=pace)
                await asyncio.to_thread(rz.wait)
            return False
        except TimeoutError:
            return True
        finally:
            await port.aclose()

    with _pty() as (master, slave):
        start = time.monotonic()
        rz = _start(["rz", "--ymodem"], slave, out, work / "rz.err")
        os.close(slave)
        try:
            capped = asyncio.run(push(master, rz))
            seconds = time.monotonic() - start
        finally:
            _stop(rz)
    result = _result(src, out, seconds, capped, src.stat().st_size)
    shutil.rmtree(out, ignore_errors=True)
    return result


def run_self(src: Path, work: Path, pace: float, cap_s: float) -> Round:
    """For reference: otatui's sender into otatui's receiver (a child process on the slave)."""
    out = Path(tempfile.mkdtemp(dir=work, prefix="self-"))

    async def push(master: int) -> bool:
        port = FdPort(master, name="pty master", owns_fd=False)
        try:
            async with asyncio.timeout(cap_s):
                await ymodem.send(port, [(src.name, src)], pace=pace)
                await asyncio.to_thread(child.wait)
            return False
        except TimeoutError:
            return True
        finally:
            await port.aclose()

    with _pty() as (master, slave):
        start = time.monotonic()
        args = [sys.executable, __file__, "--receive-into", str(out), os.ttyname(slave)]
        child = subprocess.Popen(args, start_new_session=True)
        try:
            capped = asyncio.run(push(master))
            seconds = time.monotonic() - start
        finally:
            _stop(child)
    result = _result(src, out, seconds, capped, src.stat().st_size)
    shutil.rmtree(out, ignore_errors=True)
    return result


def _receive_into(folder: str, path: str) -> int:
    from otatui.links.byte_port import SerialPort

    async def receive() -> None:
        port = await SerialPort.open(path)
        try:
            await ymodem.receive(port, Path(folder))
        finally:
            await port.aclose()

    asyncio.run(receive())
    return 0


def run(
    size_mib: int = 16,
    rounds: int = 3,
    cap_s: float = 120.0,
    sz_args: Sequence[str] = ("-k",),
    pace: float = 0.0002,
    verbose: bool = True,
) -> dict[str, object]:
    """Both pushes, alternating, `rounds` times; medians in MiB/s and their ratio."""
    for tool in ("sz", "rz"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install lrzsz")
    ours: list[Round] = []
    theirs: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-ymodem-") as tmp:
        work = Path(tmp)
        src = work / "payload.bin"
        with src.open("wb") as fh:
            for _ in range(size_mib):
                fh.write(os.urandom(MiB))
        for n in range(rounds):
            order = ("ours", "sz") if n % 2 == 0 else ("sz", "ours")
            for who in order:
                if who == "ours":
                    result = run_ours(src, work, pace, cap_s)
                    ours.append(result)
                else:
                    result = run_sz(src, work, sz_args, cap_s)
                    theirs.append(result)
                if verbose:
                    note = "capped" if result.capped else ("ok" if result.identical else "BAD")
                    print(
                        f"round {n + 1} {who:>6}: {result.seconds:6.1f} s  "
                        f"{result.received / MiB:6.2f} MiB  {result.mib_s():6.3f} MiB/s  {note}",
                        flush=True,
                    )
        own = [run_self(src, work, pace, cap_s) for _ in range(rounds)]
    if verbose:
        for n, result in enumerate(own):
            print(
                f"round {n + 1}   self: {result.seconds:6.1f} s  "
                f"{result.received / MiB:6.2f} MiB  {result.mib_s():6.3f} MiB/s  "
                f"{'ok' if result.identical else 'BAD'}  (otatui into otatui's receiver)",
                flush=True,
            )
    ours_rate = statistics.median(r.mib_s() for r in ours)
    sz_rate = statistics.median(r.mib_s() for r in theirs)
    return {
        "size_mib": size_mib,
        "rounds": rounds,
        "ours_mib_s": ours_rate,
        "baseline_mib_s": sz_rate,
        "ratio": ours_rate / sz_rate if sz_rate > 0 else float("inf"),
        "ours_s": [round(r.seconds, 2) for r in ours],
        "baseline_s": [round(r.seconds, 2) for r in theirs],
        "ours_identical": all(r.identical for r in ours),
        "ours_capped": sum(r.capped for r in ours),
        "baseline_capped": sum(r.capped for r in theirs),
        "baseline": " ".join(["sz --ymodem", *sz_args]),
        "self_mib_s": statistics.median(r.mib_s() for r in own),
        "self_identical": all(r.identical for r in own),
        "pace": pace,
        "loadavg_1min": round(os.getloadavg()[0], 2),  # the race with rz depends on the load
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cap-s", type=float, default=120.0, help="stop a round after this")
    parser.add_argument("--sz-args", default="-k", help="extra sz arguments ('' for none)")
    parser.add_argument("--pace", type=float, default=0.0002, help="otatui's pause per block")
    parser.add_argument(
        "--receive-into", nargs=2, metavar=("FOLDER", "PTY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.receive_into:
        return _receive_into(*args.receive_into)
    result = run(args.size_mib, args.rounds, args.cap_s, args.sz_args.split(), args.pace)
    print(
        f"\nYMODEM push of {args.size_mib} MiB over a pty pair into rz --ymodem, "
        f"median of {args.rounds} rounds"
    )
    print(
        f"  otatui ymodem.send   {result['ours_mib_s']:8.3f} MiB/s  {result['ours_s']} s"
        f"{'' if result['ours_identical'] else '  (NOT all identical/complete)'}"
    )
    capped = result["baseline_capped"]
    print(
        f"  {result['baseline']:<20} {result['baseline_mib_s']:8.3f} MiB/s  "
        f"{result['baseline_s']} s{f'  ({capped} capped at {args.cap_s:g} s)' if capped else ''}"
    )
    print(f"  ratio otatui/sz      {result['ratio']:8.2f}x  (goal >= 0.9x)")
    print(f"  for reference, otatui into otatui's receiver: {result['self_mib_s']:.3f} MiB/s")
    print(f"  load average (1 min) at the end: {result['loadavg_1min']}")
    return 0 if result["ours_identical"] and result["self_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
