"""Copy single files out of and into a container (``get_archive`` / ``put_archive``), keeping mode and owner."""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from drivers.docker.client import docker_errors
from mlchaos.driver_kit import DriverError


@dataclass(frozen=True)
class FileCopy:
    """One file: its path in the container, its bytes, mode and owner."""

    path: str
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    def meta(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode, "uid": self.uid, "gid": self.gid}


def read_file(api: Any, container_id: str, path: str) -> FileCopy:
    """The regular file at ``path`` in the container (DriverError for a directory, link or missing file)."""
    with docker_errors(f"copy {path} out of container {container_id[:12]}"):
        stream, _ = api.get_archive(container_id, path)
        raw = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            raise DriverError(f"{path} in container {container_id[:12]} is not a regular file")
        handle = tar.extractfile(member)
        data = handle.read() if handle else b""
    return FileCopy(path, data, member.mode & 0o7777, member.uid, member.gid)


def write_files(api: Any, container_id: str, files: list[FileCopy]) -> None:
    """Put files into the container (one archive per directory), with their mode and owner."""
    by_dir: dict[str, list[FileCopy]] = {}
    for item in files:
        if not posixpath.isabs(item.path):
            raise DriverError(f"paths in the container must be absolute, got {item.path!r}")
        by_dir.setdefault(posixpath.dirname(item.path), []).append(item)
    for directory, items in by_dir.items():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for item in items:
                info = tarfile.TarInfo(posixpath.basename(item.path))
                info.size, info.mode, info.uid, info.gid = len(item.data), item.mode, item.uid, item.gid
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(item.data))
        with docker_errors(f"copy files into {directory} of container {container_id[:12]}"):
            if not api.put_archive(container_id, directory, buffer.getvalue()):
                raise DriverError(f"the engine did not accept the files for {directory} of {container_id[:12]}")
