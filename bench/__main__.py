"""Every benchmark in one run, one table: ``make bench`` (``python -m bench``).

    .venv/bin/python -m bench [--only blocks,download,fleet,tui,startup,ymodem] [--quick]
                              [--size-mib 1024] [--rounds 5] [--rss-sizes 64,4096]
                              [--devices 1000] [--small-fleet 10] [--ymodem-mib 16]
                              [--json results.json]

Prints the raw figures of each benchmark as it finishes, then one table: benchmark, ours,
baseline, ratio, goal, met?. ``--quick`` is a smoke run (256 MiB, 2 rounds, 64 MiB only for
RSS, 100 devices, 100 devices and 10 presses for the TUI, 2 start-up rounds, 4 MiB YMODEM):
its figures are not the goals' figures.

The benchmarks (each also runs alone: ``python -m bench.download`` etc.):

- ``blocks`` (:mod:`bench.blocks`): sha256 on one core, writes through the page cache and with
  ``O_DIRECT``: what bounds a verified download here (with ``download``: the ratio to
  ``curl -o /dev/null`` that hashing alone would allow);
- ``download`` (:mod:`bench.download`): 1 GiB from Debian's nginx on 127.0.0.1 (installed
  with apt-get when missing) vs ``curl -o`` and ``curl -o /dev/null``, nginx's
  ``$request_time``, median of the rounds; peak RSS at other sizes;
- ``fleet`` (:mod:`bench.fleet`): 1,000 MQTT agents in one ``otatui run --headless``;
- ``tui`` (``bench/tui_load.py``, when present): the Fleet screen with 1,000 devices under 5,000
  events/s, key press to repaint (its ``run(devices, rate, presses)``: ``flood``/``idle``
  medians, ``met``);
- ``startup`` (:mod:`bench.startup`): ``otatui --help``, ``import otatui.cli``, TUI first frame;
- ``ymodem`` (``bench/ymodem.py``, when present): its ``run(size_mib, rounds)``; the table reads
  ``ours_mib_s``, ``baseline_mib_s`` and ``ratio`` from its result when it has them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

BENCHMARKS = ("blocks", "download", "fleet", "tui", "startup", "ymodem")
THREAD_BOUND = 1 + 4 + 2 + min(32, (os.cpu_count() or 1) + 4) + 2
"""Every thread of an ``otatui run`` is in a pool bounded by a limit that does not depend on
devices: the main thread, the download workers (``concurrent_downloads``, 4), a pumped body's
writer and hasher, asyncio's default executor (min(32, CPUs + 4)), and Python 3.11's threaded
child watcher (one thread per running install hook: ``concurrent_installs``, 2)."""


@dataclass
class Row:
    benchmark: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: no goal

    def cells(self) -> list[str]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return [self.benchmark, self.ours, self.baseline, self.ratio, self.goal, met]


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, load {load}, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )


def blocks_rows(r: dict[str, Any]) -> list[Row]:
    med = r["median_mib_per_s"]
    rows = [Row("sha256, one core (4 MiB updates)", f"{med['sha256']:.0f} MiB/s", "", "", "", None)]
    if "write" in med:
        direct = med.get("write O_DIRECT")
        rows.append(
            Row(
                f"write {r['size_mib']} MiB: page cache / O_DIRECT",
                f"{med['write']:.0f} / " + (f"{direct:.0f} MiB/s" if direct else "refused"),
                "",
                "",
                "",
                None,
            )
        )
    return rows


def download_rows(r: dict[str, Any]) -> list[Row]:
    sides = r["sides"]
    ours, peer, limit = sides["otatui"], sides["curl -o FILE"], sides["curl -o /dev/null"]
    size = r["size_mib"]
    rows = [
        Row(
            f"download {size} MiB vs curl -o",
            f"{ours['mib_per_s']:.0f} MiB/s",
            f"{peer['mib_per_s']:.0f} MiB/s",
            f"{r['ratio_vs_curl_o']:.2f}x",
            ">= 1.0x",
            r["ratio_vs_curl_o"] >= 1.0,
        ),
        Row(
            f"download {size} MiB vs curl -o /dev/null",
            f"{ours['mib_per_s']:.0f} MiB/s",
            f"{limit['mib_per_s']:.0f} MiB/s",
            f"{r['ratio_vs_devnull']:.2f}x",
            ">= 0.6x",
            r["ratio_vs_devnull"] >= 0.6,
        ),
    ]
    if "otatui httpx" in sides:
        old = sides["otatui httpx"]
        rows.append(
            Row(
                "download: raw transport vs httpx path",
                f"{ours['mib_per_s']:.0f} MiB/s",
                f"{old['mib_per_s']:.0f} MiB/s",
                f"{old['median_s'] / ours['median_s']:.2f}x",
                "",
                None,
            )
        )
    by_size = {int(k): v for k, v in r["peak_rss_mib_by_size"].items() if v is not None}
    spread = max(by_size.values()) - min(by_size.values())
    sizes = ", ".join(f"{k} MiB: {v:.1f}" for k, v in sorted(by_size.items()))
    rows.append(
        Row(
            "download peak RSS (MiB) by file size",
            sizes,
            f"curl {peer['peak_rss_mib']:.1f}",
            "",
            "< 80 MB, flat",
            max(by_size.values()) * 1.048576 < 80 and spread < 8,
        )
    )
    return rows


def fleet_rows(r: dict[str, Any]) -> list[Row]:
    big, small = r[str(r["devices"])], r[str(r["small"])]
    n = big["devices"]
    return [
        Row(
            f"fleet {n} MQTT agents: update to INSTALLED_VERSION",
            f"{big['update_s']:.1f} s, {big['reports_per_s']:.0f} reports/s, "
            f"{big.get('repeated_reports', '?')} repeated",
            f"{small['devices']} agents: {small['update_s']:.1f} s",
            "",
            "",
            None,
        ),
        Row(
            f"fleet {n}: start-up until all reported",
            f"{big['startup_s']:.1f} s",
            f"{small['devices']} agents: {small['startup_s']:.1f} s",
            "",
            "",
            None,
        ),
        Row(
            f"fleet {n}: peak RSS of otatui",
            f"{big['peak_rss_mib']:.0f} MiB",
            f"{small['devices']} agents: {small['peak_rss_mib']:.0f} MiB",
            "",
            "< 400 MB",
            big["peak_rss_mib"] * 1.048576 < 400,
        ),
        Row(
            f"fleet {n}: threads (max sampled)",
            f"{big['threads_max']}",
            f"{small['devices']} agents: {small['threads_max']}",
            "",
            f"no growth (<= {THREAD_BOUND})",
            big["threads_max"] <= THREAD_BOUND,
        ),
    ]


def startup_rows(r: dict[str, Any]) -> list[Row]:
    med = r["median_s"]
    base = med["python -c pass"]
    rows = [
        Row(
            name, f"{med[name] * 1000:.0f} ms", f"python -c pass {base * 1000:.0f} ms", "", "", None
        )
        for name in ("otatui --help", "import otatui.cli", "TUI first frame")
        if name in med
    ]
    rows += [Row(note, "", "", "", "", None) for note in r["notes"]]
    return rows


def tui_rows(r: dict[str, Any]) -> list[Row]:
    flood, idle = r["flood"], r["idle"]
    return [
        Row(
            f"TUI {r['devices']} devices, {r['rate']} events/s: key -> repaint (median)",
            f"{flood['median_ms']:.1f} ms (p90 {flood['p90_ms']:.1f}, {flood['timeouts']} t/o)",
            f"no events: {idle['median_ms']:.1f} ms",
            f"{r['ratio_median']:.2f}x",
            f"<= {r['goal_median_ms']:.0f} ms",
            bool(r["met"]),
        )
    ]


def ymodem_rows(r: dict[str, Any]) -> list[Row]:
    ratio = r.get("ratio")
    ours = r.get("ours_mib_s")
    base = r.get("baseline_mib_s")
    return [
        Row(
            f"YMODEM push {r.get('size_mib', '?')} MiB vs sz --ymodem",
            f"{ours:.2f} MiB/s" if isinstance(ours, (int, float)) else "see raw",
            f"{base:.2f} MiB/s" if isinstance(base, (int, float)) else "see raw",
            f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "",
            ">= 0.9x",
            ratio >= 0.9 if isinstance(ratio, (int, float)) else None,
        )
    ]


def print_table(rows: list[Row]) -> None:
    header = ["benchmark", "ours", "baseline", "ratio", "goal", "met?"]
    cells = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for n, line in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    parser.add_argument("--size-mib", type=int, default=None, help="download size (1024)")
    parser.add_argument("--rounds", type=int, default=None, help="download rounds (5)")
    parser.add_argument("--rss-sizes", default=None, help="MiB, comma-separated (64,4096)")
    parser.add_argument("--httpx", action="store_true", help="also time the httpx path")
    parser.add_argument("--devices", type=int, default=None, help="fleet size (1000)")
    parser.add_argument("--small-fleet", type=int, default=10)
    parser.add_argument("--tui-presses", type=int, default=None, help="TUI key presses (40)")
    parser.add_argument("--startup-rounds", type=int, default=None)
    parser.add_argument("--ymodem-mib", type=int, default=None, help="YMODEM size (16)")
    parser.add_argument("--ymodem-rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the raw figures here")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHMARKS}")
    quick = args.quick
    size = args.size_mib or (256 if quick else 1024)
    rounds = args.rounds or (2 if quick else 5)
    rss_text = args.rss_sizes if args.rss_sizes is not None else ("64" if quick else "64,4096")
    rss_sizes = [int(s) for s in rss_text.split(",") if s.strip()]
    devices = args.devices or (100 if quick else 1000)
    startup_rounds = args.startup_rounds or (2 if quick else 5)
    ymodem_mib = args.ymodem_mib or (4 if quick else 16)

    print(machine(), flush=True)
    results: dict[str, Any] = {"machine": machine(), "started": time.time()}
    rows: list[Row] = []
    failures: list[str] = []

    def attempt(name: str, work: Callable[[], dict[str, Any]], to_rows: Callable[..., list[Row]]):
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            result = work()
        except (SystemExit, Exception) as exc:  # one that cannot run says why, the others go on
            failures.append(f"{name}: {exc}")
            rows.append(Row(name, "failed", "", "", "", False))
            print(f"{name} failed: {exc}", flush=True)
            return
        results[name] = result
        print(json.dumps(result, indent=1, default=str), flush=True)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
        rows.extend(to_rows(result))

    if "blocks" in chosen:
        from bench import blocks

        attempt("blocks", lambda: blocks.run(1024 if not quick else 256, 3), blocks_rows)
    if "download" in chosen:
        from bench import download

        attempt(
            "download",
            lambda: download.run(size, rounds, rss_sizes, httpx_side=args.httpx),
            download_rows,
        )
    if "blocks" in results and "download" in results:
        sha = results["blocks"]["median_mib_per_s"]["sha256"]
        limit = results["download"]["sides"]["curl -o /dev/null"]["mib_per_s"]
        rows.append(
            Row(
                "download: best ratio to /dev/null with sha256 alone",
                f"{min(sha, limit):.0f} MiB/s",
                f"{limit:.0f} MiB/s",
                f"{min(1.0, sha / limit):.2f}x",
                "",
                None,
            )
        )
    if "fleet" in chosen:
        from bench import fleet

        attempt("fleet", lambda: fleet.run(devices, args.small_fleet), fleet_rows)
    if "tui" in chosen:
        if importlib.util.find_spec("bench.tui_load") is None:
            rows.append(
                Row("TUI under load", "not run: bench/tui_load.py missing", "", "", "", None)
            )
        else:
            tui = importlib.import_module("bench.tui_load")
            presses = args.tui_presses or (10 if quick else 40)
            n = 100 if quick else 1000
            attempt("tui", lambda: tui.run(n, 5000, presses), tui_rows)
    if "startup" in chosen:
        from bench import startup

        attempt("startup", lambda: startup.run(startup_rounds), startup_rows)
    if "ymodem" in chosen:
        if importlib.util.find_spec("bench.ymodem") is None:
            rows.append(Row("YMODEM push", "not run: bench/ymodem.py missing", "", "", "", None))
        else:
            from bench.apt import ensure

            def ymodem_run() -> dict[str, Any]:
                ensure({"sz": "lrzsz", "rz": "lrzsz"}, "the YMODEM benchmark")
                module = importlib.import_module("bench.ymodem")
                result: dict[str, Any] = module.run(ymodem_mib, args.ymodem_rounds)
                return result

            attempt("ymodem", ymodem_run, ymodem_rows)

    print(f"\n{machine()}")
    if quick:
        print("--quick: smoke-run sizes, not the goals' sizes")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
