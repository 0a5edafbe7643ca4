"""Default locations (XDG) and private file writing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from otatui.paths import (
    Paths,
    default_cache_dir,
    default_config_file,
    default_data_dir,
    default_paths,
    ensure_private_dir,
    write_secret,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would make everything world-readable: our modes must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_defaults_follow_xdg_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_config_file() == tmp_path / "cfg" / "otatui" / "config.toml"
    assert default_data_dir() == tmp_path / "data" / "otatui"
    assert default_cache_dir() == tmp_path / "cache" / "otatui"
    paths = default_paths()
    assert paths.config_file == tmp_path / "cfg" / "otatui" / "config.toml"
    assert paths.db_path == tmp_path / "data" / "otatui" / "otatui.db"
    assert paths.tokens_dir == tmp_path / "data" / "otatui" / "tokens"
    assert paths.cache_dir == tmp_path / "cache" / "otatui"


def test_defaults_without_xdg_env_live_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_file() == tmp_path / ".config" / "otatui" / "config.toml"
    assert default_data_dir() == tmp_path / ".local" / "share" / "otatui"
    assert default_cache_dir() == tmp_path / ".cache" / "otatui"


def test_paths_overrides_keep_what_is_not_given(tmp_path: Path) -> None:
    base = Paths(config_file=tmp_path / "c.toml", data_dir=tmp_path / "d", cache_dir=tmp_path / "k")
    moved = base.with_overrides(data_dir=tmp_path / "elsewhere")
    assert moved.data_dir == tmp_path / "elsewhere"
    assert moved.db_path == tmp_path / "elsewhere" / "otatui.db"
    assert moved.tokens_dir == tmp_path / "elsewhere" / "tokens"
    assert moved.cache_dir == base.cache_dir
    assert moved.config_file == base.config_file
    assert base.data_dir == tmp_path / "d"  # frozen: the original is unchanged


@pytest.mark.usefixtures("open_umask")
def test_write_secret_is_0600_in_new_0700_dirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "token"
    write_secret(target, "s3cret\n")
    assert target.read_text() == "s3cret\n"
    assert mode(target) == 0o600
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700


@pytest.mark.usefixtures("open_umask")
def test_write_secret_replaces_a_readable_file_and_leaves_no_temp(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    target = shared / "token"
    target.write_text("old")
    target.chmod(0o644)
    write_secret(target, "new")
    assert target.read_text() == "new"
    assert mode(target) == 0o600
    assert sorted(p.name for p in shared.iterdir()) == ["token"]
    assert mode(shared) == 0o755  # an existing parent is not touched


def test_write_secret_failure_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_secret(target, "old")
    with pytest.raises(UnicodeEncodeError):
        write_secret(target, "bad \udcff")  # a lone surrogate cannot be encoded
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


@pytest.mark.usefixtures("open_umask")
def test_ensure_private_dir_creates_and_tightens(tmp_path: Path) -> None:
    fresh = ensure_private_dir(tmp_path / "x" / "y")
    assert fresh == tmp_path / "x" / "y"
    assert mode(fresh) == 0o700
    assert mode(tmp_path / "x") == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    ensure_private_dir(loose)
    assert mode(loose) == 0o700


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        ensure_private_dir(tmp_path / "f")
