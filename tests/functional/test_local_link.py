"""The install hook contract (DESIGN.md §3) run by the local link, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from otatui.links.link import Finished, InstallEvent, InstallRequest, Step
from otatui.links.local import LocalLink
from otatui.otau.manifest import Manifest, parse_manifest

PY = sys.executable


def manifest(text: str) -> Manifest:
    parsed = parse_manifest(text)
    assert isinstance(parsed, Manifest), parsed
    return parsed


URL_LIST = (
    '{"version":"2.0.0","name":"Firmware","type":"URL_LIST",'
    ' "payload":["fw.bin","https://files.example.com/extra.tar"]}'
)


def request(tmp_path: Path, text: str = URL_LIST) -> InstallRequest:
    workdir = tmp_path / "work"
    workdir.mkdir()
    files = []
    for name, data in (("fw.bin", b"firmware"), ("extra.tar", b"extra")):
        (workdir / name).write_bytes(data)
        files.append(workdir / name)
    return InstallRequest(manifest=manifest(text), files=tuple(files), workdir=workdir)


async def gone(pid: int, within: float = 5.0) -> bool:
    """The process has exited (or is a zombie waiting for its reaper)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        await asyncio.sleep(0.05)
    return False


async def run(link: LocalLink, req: InstallRequest) -> list[InstallEvent]:
    return [event async for event in link.install(req)]


HOOK = r"""
import json, os, sys, pathlib
env = {k: v for k, v in os.environ.items() if k.startswith("OTATUI_")}
manifest = pathlib.Path(env["OTATUI_MANIFEST"]).read_text()
files = env["OTATUI_FILES"].split("\n")
out = {"cwd": os.getcwd(), "env": env, "manifest": manifest,
       "contents": [pathlib.Path(f).read_bytes().decode() for f in files]}
print("step one"); sys.stdout.flush()
print("step two")
pathlib.Path(sys.argv[1]).write_text(json.dumps(out))
"""


async def test_hook_gets_workdir_env_manifest_and_files(tmp_path: Path) -> None:
    req = request(tmp_path)
    record = tmp_path / "record.json"
    events = await run(LocalLink([PY, "-c", HOOK, str(record)]), req)
    assert events == [
        Step("step one"),
        Step("step two"),
        Finished(True, "install command succeeded"),
    ]
    seen = json.loads(record.read_text())
    assert Path(seen["cwd"]) == req.workdir
    env = seen["env"]
    assert env["OTATUI_VERSION"] == "2.0.0"
    assert env["OTATUI_NAME"] == "Firmware"
    assert env["OTATUI_TYPE"] == "URL_LIST"
    assert seen["manifest"] == URL_LIST  # byte-identical manifest text
    assert env["OTATUI_FILES"].split("\n") == [str(p.resolve()) for p in req.files]
    assert all(Path(p).is_absolute() for p in env["OTATUI_FILES"].split("\n"))
    assert seen["contents"] == ["firmware", "extra"]
    assert not os.path.exists(env["OTATUI_MANIFEST"])  # cleaned up afterwards


async def test_json_manifest_reaches_the_hook_inline(tmp_path: Path) -> None:
    text = '{"version":"3","name":"Settings","type":"JSON","payload":{"rate":5}}'
    workdir = tmp_path / "w"
    workdir.mkdir()
    req = InstallRequest(manifest=manifest(text), files=(), workdir=workdir)
    code = (
        "import os,json; print(json.load(open(os.environ['OTATUI_MANIFEST']))['payload']['rate'])"
    )
    events = await run(LocalLink([PY, "-c", code]), req)
    assert events[0] == Step("5")
    assert events[-1] == Finished(True, "install command succeeded")


async def test_failure_carries_the_last_stderr_line(tmp_path: Path) -> None:
    code = (
        "import sys; print('working');sys.stderr.write('warn\\nflash write failed\\n'); sys.exit(3)"
    )
    events = await run(LocalLink([PY, "-c", code]), request(tmp_path))
    assert events[-1] == Finished(False, "flash write failed")
    assert Step("working") in events


async def test_exit_code_without_stderr(tmp_path: Path) -> None:
    events = await run(LocalLink([PY, "-c", "raise SystemExit(4)"]), request(tmp_path))
    assert events[-1] == Finished(False, "install command exited with code 4")


async def test_missing_command_is_an_error_not_a_crash(tmp_path: Path) -> None:
    events = await run(LocalLink([str(tmp_path / "no-such-installer")]), request(tmp_path))
    assert len(events) == 1 and isinstance(events[0], Finished) and not events[0].ok
    assert "cannot start install command" in events[0].message


async def test_timeout_kills_the_hook_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess,sys,time;"
        f"p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        f"open({str(pidfile)!r},'w').write(str(p.pid));"
        "sys.stderr.write('erasing flash\\n'); sys.stderr.flush(); time.sleep(60)"
    )
    started = time.monotonic()
    events = await run(LocalLink([PY, "-c", code], timeout=1.0), request(tmp_path))
    assert time.monotonic() - started < 10
    last = events[-1]
    assert isinstance(last, Finished) and not last.ok
    assert last.message == "install timed out after 1 s; last output: erasing flash"
    assert await gone(int(pidfile.read_text()))


async def test_cancel_stops_the_hook(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = (
        f"import os,time; open({str(pidfile)!r},'w').write(str(os.getpid()));"
        "print('go', flush=True); time.sleep(60)"
    )
    gen = LocalLink([PY, "-c", code]).install(request(tmp_path))
    assert await anext(gen) == Step("go")
    await gen.aclose()
    assert await gone(int(pidfile.read_text()))
