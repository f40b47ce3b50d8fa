"""The append-only event journal and the study's write lock.

One JSON object per line, appended with a single write() on an O_APPEND descriptor and fsync'ed,
so a crash leaves at worst a torn last line. Reading tolerates a torn last line (with a warning)
and refuses a damaged line anywhere else, naming it. Human-readable with `tail` and `jq`.
"""

from __future__ import annotations

import errno
import contextlib
import fcntl
import json
import os
import warnings
from pathlib import Path

from bomix.errors import JournalCorruptedError, StudyLockedError


class Journal:
    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._torn_at: int | None = None  # byte offset of a torn last line, if any
        self._batching = self._dirty = False

    def read(self) -> list[dict]:
        """All whole events, in order. A torn last line is skipped with a warning."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        events, offset = [], 0
        lines = data.split(b"\n")
        for lineno, raw in enumerate(lines, start=1):
            last = lineno == len(lines)
            if raw.strip():
                try:
                    event = json.loads(raw)
                    if not isinstance(event, dict) or "event" not in event:
                        raise ValueError("not an event object")
                    if last:  # a whole JSON object with no newline: the newline was lost mid-write
                        raise ValueError("no newline")
                except ValueError as e:
                    # the final line, or followed only by blank space: a torn append
                    if last or not any(x.strip() for x in lines[lineno:]):
                        warnings.warn(f"{self.path}: ignoring a torn last line ({len(raw)} bytes) left by a crash",
                                      stacklevel=2)
                        self._torn_at = offset
                        break
                    snippet = raw[:80].decode("utf-8", "replace")
                    raise JournalCorruptedError(
                        f"{self.path} line {lineno} is corrupted ({e}); only a torn last line can be "
                        f"skipped, got {snippet!r}. Restore the file or cut it at that line."
                    ) from None
                events.append(event)
            offset += len(raw) + 1
        return events

    def repair(self) -> None:
        """Cut a torn last line found by `read` (call only while holding the write lock)."""
        if self._torn_at is not None:
            with open(self.path, "r+b") as f:
                f.truncate(self._torn_at)
                os.fsync(f.fileno())
            self._torn_at = None

    def append(self, event: dict) -> None:
        line = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            if self.fsync and not self._batching:
                os.fsync(fd)
            self._dirty = self._batching
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def batch(self):
        """Group commit: the appends inside share one fsync at the end. Each line is still written
        at once, so a killed process loses nothing; only an OS crash inside the batch could."""
        if self._batching:
            yield
            return
        self._batching, self._dirty = True, False
        try:
            yield
        finally:
            self._batching = False
            if self._dirty and self.fsync and self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._dirty = False


class StudyLock:
    """An exclusive, non-blocking flock on DIR/study.lock; the OS drops it when the process dies."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "study.lock"
        self._fd: int | None = None

    def acquire(self) -> StudyLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise StudyLockedError(
                    f"one writer per study: {self.path.parent} is already open for writing by process {holder}; "
                    "stop that process (or close its study) first. Reading with bomix.load_study() is always allowed."
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
