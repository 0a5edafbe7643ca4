"""Where otatui keeps its files, and how it writes the private ones.

Default locations come from platformdirs (app name ``otatui``) and, on Linux and the other Unix
systems, follow ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME`` and ``XDG_CACHE_HOME`` at the time
:func:`default_paths` is called:

- config file: ``<user_config_dir>/config.toml``
- data dir (SQLite database, provisioned tokens): ``<user_data_dir>``
- cache dir (downloaded payloads): ``<user_cache_dir>``

A config file's ``[paths]`` table can move the data and cache dirs (:meth:`Paths.with_overrides`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

APP_NAME = "otatui"
CONFIG_FILE_NAME = "config.toml"
DB_FILE_NAME = "otatui.db"
TOKENS_DIR_NAME = "tokens"

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


@dataclass(frozen=True)
class Paths:
    """The locations one otatui process works with."""

    config_file: Path
    data_dir: Path
    cache_dir: Path

    @property
    def db_path(self) -> Path:
        """The SQLite database (history, outbox, transfer state)."""
        return self.data_dir / DB_FILE_NAME

    @property
    def tokens_dir(self) -> Path:
        """Tokens of provisioned devices, one file per identity, mode 0600."""
        return self.data_dir / TOKENS_DIR_NAME

    def with_overrides(
        self,
        *,
        config_file: Path | None = None,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> Paths:
        """A copy with the given locations replaced (``None`` keeps the current one)."""
        return replace(
            self,
            config_file=config_file if config_file is not None else self.config_file,
            data_dir=data_dir if data_dir is not None else self.data_dir,
            cache_dir=cache_dir if cache_dir is not None else self.cache_dir,
        )


def default_config_file() -> Path:
    """``<user_config_dir>/config.toml`` (honours ``XDG_CONFIG_HOME``)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILE_NAME


def default_data_dir() -> Path:
    """The user data dir (honours ``XDG_DATA_HOME``)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    """The user cache dir (honours ``XDG_CACHE_HOME``)."""
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_paths() -> Paths:
    """The default locations, read from the environment now."""
    return Paths(
        config_file=default_config_file(),
        data_dir=default_data_dir(),
        cache_dir=default_cache_dir(),
    )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700 and return it.

    Missing parents are created 0700 too; existing parents are left alone. The directory itself is
    tightened to 0700 if it already exists with group or world access, so it must be one of
    otatui's own directories (data dir, tokens dir), never a shared one like ``/tmp``.
    """
    _make_missing_dirs(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & ~0o077 | PRIVATE_DIR_MODE)
    return path


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode 0600).

    The text goes to a temporary file (created 0600 from the start, in the same directory),
    is flushed to disk, then renamed over ``path``: a reader sees the old content or the new one,
    never a partial file, and the secret is never readable by others, not even briefly.
    Missing parent directories are created with mode 0700.
    """
    parent = path.parent
    _make_missing_dirs(parent)
    fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), SECRET_FILE_MODE)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(parent)


def _make_missing_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each with mode 0700 (whatever the umask)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            d.mkdir(mode=PRIVATE_DIR_MODE)
            d.chmod(PRIVATE_DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every platform can open a dir)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
