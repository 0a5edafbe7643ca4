"""A raw pty pair: a simulated serial device serves the master while the host opens the slave by
its path (`link = "serial:<slave_path>"`), as it would open a USB serial adapter.

    with PtyPair() as pty:
        port = FdPort(pty.master, name=pty.slave_path)
        pty.disown_master()          # the port closes the master from now on
        ...                          # the host opens pty.slave_path
        pty.close_slave()            # once the host holds its own fd of the slave

Both fds we still hold are closed when the `with` block ends (or by `close()`). While our copy of
the slave is open, the master never sees the host's side go away.
"""

from __future__ import annotations

import os
import tty

__all__ = ["PtyPair"]


class PtyPair:
    """`os.openpty()` with the slave in raw mode (bytes pass as on a serial line: no echo, no
    line editing, no translation)."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            self.slave_path = os.ttyname(slave)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master: int | None = master
        self._slave: int | None = slave

    @property
    def master(self) -> int:
        """The master fd (ValueError once closed or disowned)."""
        if self._master is None:
            raise ValueError(f"the master of {self.slave_path} is no longer ours")
        return self._master

    @property
    def slave(self) -> int | None:
        """Our fd of the slave; None once closed."""
        return self._slave

    @property
    def master_open(self) -> bool:
        return self._master is not None

    def disown_master(self) -> None:
        """Something else (a port, a child process) closes the master from now on."""
        self._master = None

    def close_master(self) -> None:
        if self._master is not None:
            fd, self._master = self._master, None
            os.close(fd)

    def close_slave(self) -> None:
        if self._slave is not None:
            fd, self._slave = self._slave, None
            os.close(fd)

    def close(self) -> None:
        self.close_slave()
        self.close_master()

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PtyPair({self.slave_path!r})"
