"""The connector's content area: files devices download with ``GET /provision/download``.

Each item has an id, a file on disk, a content type, an update time, a description and tags
(murano-device-api.md §4). Items are either copied into the store's directory or served in place
from a given path (``copy=False``, handy for big test files). The size is read from the file when
it is served, so it is always the size of the bytes actually sent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

_INDEX_FILE = "index.json"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass
class Content:
    id: str
    path: Path
    content_type: str = DEFAULT_CONTENT_TYPE
    updated: float = 0.0
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def info_line(self) -> str:
        """``<content-type>,<byte-size>,<updated-timestamp-s>,<description>`` (§4)."""
        return f"{self.content_type},{self.size},{int(self.updated)},{self.description}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content_type": self.content_type,
            "size": self.size,
            "updated": self.updated,
            "description": self.description,
            "tags": dict(self.tags),
        }


class ContentStore:
    """Content items by id. Without a directory, copies go to a private temporary one."""

    def __init__(self, directory: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._persistent = directory is not None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="otatui-content-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, Content] = {}
        self._load()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def add_bytes(
        self,
        content_id: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> Content:
        path = self._own_path(content_id)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return self._put(content_id, path, content_type, description, tags)

    def add_file(
        self,
        content_id: str,
        source: Path,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        description: str = "",
        tags: dict[str, str] | None = None,
        copy: bool = True,
    ) -> Content:
        """Add ``source`` under ``content_id``; ``copy=False`` serves the file in place."""
        if not source.is_file():
            raise FileNotFoundError(f"no such file: {source}")
        path = source.resolve()
        if copy:
            path = self._own_path(content_id)
            tmp = path.with_name(path.name + ".part")
            shutil.copyfile(source, tmp)
            tmp.replace(path)
        return self._put(content_id, path, content_type, description, tags)

    def get(self, content_id: str) -> Content | None:
        item = self._items.get(content_id)
        if item is not None and not item.path.is_file():
            return None
        return item

    def items(self) -> list[Content]:
        return [c for c in self._items.values() if c.path.is_file()]

    def remove(self, content_id: str) -> bool:
        item = self._items.pop(content_id, None)
        if item is None:
            return False
        if item.path.parent == self.directory:
            item.path.unlink(missing_ok=True)
        self._save()
        return True

    def _own_path(self, content_id: str) -> Path:
        if not content_id:
            raise ValueError("a content id must not be empty")
        return self.directory / ("c-" + quote(content_id, safe=""))

    def _put(
        self,
        content_id: str,
        path: Path,
        content_type: str,
        description: str,
        tags: dict[str, str] | None,
    ) -> Content:
        old = self._items.get(content_id)
        if old is not None and old.path != path and old.path.parent == self.directory:
            old.path.unlink(missing_ok=True)
        item = Content(content_id, path, content_type, time.time(), description, dict(tags or {}))
        self._items[content_id] = item
        self._save()
        return item

    def _save(self) -> None:
        if not self._persistent:
            return
        doc = [
            {
                "id": c.id,
                "path": str(c.path),
                "content_type": c.content_type,
                "updated": c.updated,
                "description": c.description,
                "tags": c.tags,
            }
            for c in self._items.values()
        ]
        index = self.directory / _INDEX_FILE
        tmp = index.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, index)

    def _load(self) -> None:
        index = self.directory / _INDEX_FILE
        if not self._persistent or not index.exists():
            return
        for entry in json.loads(index.read_text(encoding="utf-8")):
            entry["path"] = Path(entry["path"])
            item = Content(**entry)
            self._items[item.id] = item
