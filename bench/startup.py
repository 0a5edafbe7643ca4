"""Benchmark: start-up times, each a fresh process, wall time from spawn, median of ``--rounds``.

    .venv/bin/python -m bench.startup [--rounds 5]

- ``otatui --help``: until the process exits (the help is printed);
- ``import otatui.cli``: ``python -c "import otatui.cli"`` until it exits;
- ``python -c pass``: the interpreter alone, for reference;
- ``TUI first frame``: the frozen app (``otatui.tui.snapshot_app``: sample data, no network)
  under Textual's Pilot (``run_test``, 120x40), until the first screen is mounted and painted;
  skipped with a note when ``otatui.tui.app`` does not exist.

Also the five slowest imports made by ``otatui.cli`` (``python -X importtime``, cumulative).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OTATUI = str(Path(sys.executable).with_name("otatui"))

FIRST_FRAME = """
import asyncio
from otatui.tui.snapshot_app import snapshot_app

async def main() -> None:
    app = snapshot_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.screen is not None and app.screen.is_mounted
        print("frame", flush=True)

asyncio.run(main())
"""


def timed(argv: list[str], marker: str | None = None) -> float:
    """Seconds from spawn to exit (or to the line ``marker`` on stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen: float | None = None
    if marker is not None:
        for line in proc.stdout:
            if line.strip() == marker:
                seen = time.perf_counter() - t0
                break
    _out, err = proc.communicate(timeout=120)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {err.strip()[-400:]}")
    if marker is not None and seen is None:
        raise SystemExit(f"{' '.join(argv[:3])}: no {marker!r} line")
    return seen if seen is not None else total


def slowest_imports(module: str, count: int = 5) -> list[tuple[str, float]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[str, float]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, raw_name = line[12:].split("|")
        depth = (len(raw_name) - len(raw_name.lstrip()) - 1) // 2
        name = raw_name.strip()
        if depth <= 1 and name != module:  # what the module imports directly, and itself
            rows.append((name, int(cumulative_us) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:count]


def run(rounds: int = 5, log: Any = print) -> dict[str, Any]:
    cases: dict[str, tuple[list[str], str | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "import otatui.cli": ([sys.executable, "-c", "import otatui.cli"], None),
        "otatui --help": ([OTATUI, "--help"], None),
    }
    notes: list[str] = []
    if importlib.util.find_spec("otatui.tui.app") is not None:
        cases["TUI first frame"] = ([sys.executable, "-c", FIRST_FRAME], "frame")
    else:
        notes.append("TUI first frame skipped: otatui.tui.app does not exist yet")
    times: dict[str, list[float]] = {name: [] for name in cases}
    for argv, marker in cases.values():  # warm-up: bytecode compiled, files cached
        timed(argv, marker)
    for _ in range(rounds):
        for name, (argv, marker) in cases.items():
            times[name].append(timed(argv, marker))
    log("start-up: " + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in times.items()))
    return {
        "rounds": rounds,
        "times_s": times,
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "slowest_imports": slowest_imports("otatui.cli"),
        "notes": notes,
    }


def print_result(result: dict[str, Any]) -> None:
    for name, median in result["median_s"].items():
        values = " ".join(f"{t:.3f}" for t in result["times_s"][name])
        print(f"{name:<20}{median:>8.3f} s   ({values})")
    print("slowest imports of otatui.cli (cumulative): " + ", ".join(
        f"{name} {seconds:.3f} s" for name, seconds in result["slowest_imports"]
    ))  # fmt: skip
    for note in result["notes"]:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print_result(run(args.rounds))


if __name__ == "__main__":
    main()
