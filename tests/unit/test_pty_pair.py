"""PtyPair: a raw pty whose fds are closed once, and a master that can be handed over."""

from __future__ import annotations

import os

import pytest

from otatui.sim.pty_pair import PtyPair


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_bytes_pass_raw_and_both_fds_close_at_the_end() -> None:
    with PtyPair() as pty:
        master, slave = pty.master, pty.slave
        assert slave is not None and os.ttyname(slave) == pty.slave_path
        os.write(master, b"a\r\nb\x03")
        assert os.read(slave, 100) == b"a\r\nb\x03"  # no translation, no signal characters
        os.write(slave, b"x\n")
        assert os.read(master, 100) == b"x\n"  # no echo of what the master wrote
    assert not is_open(master) and not is_open(slave)
    pty.close()  # closing again is harmless
    with pytest.raises(ValueError, match="no longer ours"):
        _ = pty.master


def test_a_disowned_master_is_left_to_its_new_owner() -> None:
    with PtyPair() as pty:
        master = pty.master
        pty.disown_master()
        assert not pty.master_open
    try:
        assert is_open(master)
    finally:
        os.close(master)
