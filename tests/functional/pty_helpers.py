"""Pty pairs and lrzsz processes for the serial tests (import as `from pty_helpers import ...`).

    with pty_pair() as pty:                 # otatui.sim.pty_pair.PtyPair: .master, .slave_path
        port = FdPort(pty.master, name="pty master", owns_fd=False)   # inside the running loop
        other = await SerialPort.open(pty.slave_path)                 # or hand pty.slave to a child
        pty.close_slave()                   # once nothing else needs our copy of the slave fd

The pair's fds are closed when the `with` block ends (so wrap them with `owns_fd=False`).
While our copy of the slave fd is open, the master never sees the other side go away; close it
(`close_slave()`) once a child process or a `SerialPort` holds the slave, so that reading the
master raises `PortClosed` when that side closes.

`lrzsz(args, pty, cwd=...)` starts `sz`/`rz` with stdin/stdout on the pty slave (or master,
`on_master=True`) and kills and reaps it when the block ends; its stderr goes to a temp file,
readable with `proc_stderr(proc)`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from otatui.sim.pty_pair import PtyPair

SZ = shutil.which("sz") or "/usr/bin/sz"
RZ = shutil.which("rz") or "/usr/bin/rz"
HAVE_LRZSZ = os.access(SZ, os.X_OK) and os.access(RZ, os.X_OK)


@contextlib.contextmanager
def pty_pair() -> Iterator[PtyPair]:
    """A raw pty pair (`otatui.sim.pty_pair.PtyPair`); our fds are closed when the block ends."""
    with PtyPair() as pair:
        yield pair


_stderr_files: dict[int, Path] = {}


@contextlib.contextmanager
def lrzsz(
    args: list[str], pty: PtyPair, *, cwd: Path | str | None = None, on_master: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Run an lrzsz command on the pty slave (or the master); killed and reaped at the end.

    Our copy of the fd the child gets is closed once the child holds it, so that the other side
    sees the child go away. On the master: open the slave yourself first (e.g.
    `SerialPort.open(pty.slave_path)`, then `pty.close_slave()`).
    """
    fd = pty.master if on_master else pty.slave
    assert fd is not None and (pty.master_open or not on_master), "that side is closed"
    with tempfile.NamedTemporaryFile(prefix="lrzsz-", suffix=".err", delete=False) as err:
        err_path = Path(err.name)
    with err_path.open("wb") as err_file:
        proc = subprocess.Popen(
            args, stdin=fd, stdout=fd, stderr=err_file, cwd=cwd, start_new_session=True
        )
    _stderr_files[proc.pid] = err_path
    if on_master:
        pty.close_master()
    else:
        pty.close_slave()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        _stderr_files.pop(proc.pid, None)
        err_path.unlink(missing_ok=True)


def proc_stderr(proc: subprocess.Popen[bytes]) -> str:
    """What the lrzsz process wrote to stderr so far (for assertion messages)."""
    path = _stderr_files.get(proc.pid)
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-2000:]
