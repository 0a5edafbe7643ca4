"""Debian packages the benchmarks need, installed with apt-get when missing (as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping


def ensure(programs: Mapping[str, str], why: str) -> None:
    """Install the Debian package of every program in ``programs`` that is not on PATH.

    ``programs`` maps a program (a name or an absolute path) to its package. Without root or
    apt-get, raises ``SystemExit`` naming the packages to install.
    """
    missing = sorted(
        {
            package
            for program, package in programs.items()
            if not (os.path.exists(program) if os.sep in program else shutil.which(program))
        }
    )
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"{why} needs: apt-get install {' '.join(missing)}")
    print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )
