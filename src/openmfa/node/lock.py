"""One running node per data directory: ``openmfa serve`` holds an exclusive lock on
``openmfa.lock``; commands that must not run under a live node (restore) take it too."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ..errors import NodeBusy

__all__ = ["NodeBusy", "NodeLock"]


class NodeLock:
    def __init__(self, data_dir: Path, name: str = "openmfa.lock") -> None:
        self.path = data_dir / name
        self._fd: int | None = None

    def acquire(self, why: str) -> NodeLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise NodeBusy(
                f"cannot {why}: another openmfa process (pid {holder}) is using "
                f"{self.path.parent}; stop it first (for a server: kill -TERM {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> NodeLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
