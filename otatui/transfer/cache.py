"""The content-addressed payload cache: verified files named by their sha256.

Layout under the cache dir::

    partial/<sha256(key)[:32]>.part    downloads in progress (kept across restarts)
    sha256/<hex>                        verified files, read-only, shared by every source

The index *key → sha256* lives in the store (``cache_entry``), so a second device needing the
same item finds it without downloading it again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from pathlib import Path

from otatui.transfer.errors import DownloadError
from otatui.transfer.progress import CachedFile

DIR_MODE = 0o700
BLOB_MODE = 0o400
COPY_BLOCK = 1 << 20
_LINK_FALLBACK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


class ContentCache:
    """Paths and atomic moves of the cache dir (no network, no store)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / "partial"
        self.blob_dir = root / "sha256"

    def ensure(self) -> None:
        for directory in (self.root, self.partial_dir, self.blob_dir):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def partial_path(self, key: str) -> Path:
        return self.partial_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".part")

    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256.lower()

    def is_partial(self, path: Path) -> bool:
        """True for a path this cache could have used for a partial file (safe to delete)."""
        return path.parent == self.partial_dir and path.suffix == ".part"

    def blob(self, sha256: str, size: int | None = None) -> CachedFile | None:
        """The cached file with this digest (and size, when given), if present."""
        path = self.blob_path(sha256)
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return None
        return CachedFile(path=path, sha256=sha256.lower(), size=st.st_size)

    def commit(self, partial: Path, sha256: str, size: int) -> CachedFile:
        """Move a verified partial file to its content address (same bytes there: keep those)."""
        target = self.blob_path(sha256)
        existing = self.blob(sha256, size)
        if existing is not None:
            partial.unlink(missing_ok=True)
            return existing
        os.chmod(partial, BLOB_MODE)
        os.replace(partial, target)
        _fsync_dir(self.blob_dir)
        return CachedFile(path=target, sha256=sha256.lower(), size=size)

    def discard(self, partial: Path) -> None:
        if self.is_partial(partial):
            partial.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def filename_problem(filename: str) -> str | None:
    """Why ``filename`` cannot be used as one file inside a folder, or ``None``."""
    if not filename or filename in (".", ".."):
        return "is empty or a dot name"
    if "/" in filename or "\\" in filename or "\0" in filename:
        return "contains a path separator or NUL"
    if filename != filename.strip():
        return "has leading or trailing whitespace"
    if any(not ch.isprintable() for ch in filename):
        return "contains control characters"
    if len(filename.encode("utf-8", "surrogatepass")) > 255:
        return "is longer than 255 bytes"
    return None


def materialize(cached: CachedFile, folder: Path, filename: str, *, copy: bool = False) -> Path:
    """Put ``cached`` into ``folder`` as ``filename``: a hard link (or a copy), nothing else.

    Refuses any name that would land outside ``folder`` (separators, ``..``, symlinks in place)
    and never replaces an existing entry. Hard links share the cache's read-only inode: an
    installer that must modify its files in place should ask for ``copy=True``. Blocking (a
    copy of a big file takes a while): call it through ``asyncio.to_thread`` from the loop.
    """
    problem = filename_problem(filename)
    if problem is not None:
        raise DownloadError(f"payload file name {filename[:60]!r} {problem}; refused")
    base = folder.resolve(strict=True)
    target = base / filename
    if target.parent != base:
        raise DownloadError(f"payload file name {filename[:60]!r} leaves its folder; refused")
    if os.path.lexists(target):
        raise DownloadError(f"payload file {filename[:60]!r} already exists in {base}; refused")
    if not copy:
        try:
            os.link(cached.path, target, follow_symlinks=False)
            return target
        except OSError as exc:
            if exc.errno not in _LINK_FALLBACK:
                raise DownloadError(
                    f"cannot link {filename[:60]!r} into {base}: {exc.strerror}"
                ) from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        raise DownloadError(f"cannot create {filename[:60]!r} in {base}: {exc.strerror}") from None
    try:
        with open(fd, "wb") as dst, open(cached.path, "rb") as src:
            shutil.copyfileobj(src, dst, COPY_BLOCK)
    except OSError as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        raise DownloadError(f"cannot copy {filename[:60]!r} into {base}: {exc.strerror}") from None
    return target
