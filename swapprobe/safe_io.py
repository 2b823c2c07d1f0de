"""Writes that a full disk cannot tear: the HDF5 store's file and the ``--json``/``--csv`` files.

HDF5 updates its metadata in place, spread over the file, and cannot be trusted after a failed
write: a store whose disk filled up mid-record used to be left unreadable. :class:`GuardedFile`
is the file h5py's ``fileobj`` driver writes through, so that the file on disk only ever moves
from one complete state (an HDF5 flush) to the next:

* bytes written past the last committed size go straight to disk (they are new space, nothing
  of the committed state lives there);
* bytes written over the committed part are held in memory (HDF5 metadata: object headers,
  B-tree nodes, heaps; small) until HDF5's flush ends with the driver's ``flush()``; then the
  new space is allocated for real (``posix_fallocate``, which fails *before* anything old is
  touched) and only then are the held bytes written over the old ones, space that is already
  allocated and cannot run out;
* the first failed write marks the file failed (``failure``): it gives the new space back
  (truncates to the committed size), drops the held bytes and ignores every later write, so
  whatever HDF5 does while closing cannot touch the last complete state. The failure is *not*
  raised into HDF5: h5py writes from places where an exception is swallowed (a dataset's
  chunks are written when its id is freed), so the caller checks ``failure`` after each
  flush instead, and HDF5's own state stays coherent meanwhile.

A process killed between two flushes leaves the committed state too (the held bytes die with
it). What it does not protect against is a machine losing power while the held bytes are being
written (no fsync, as before), nor copy-on-write filesystems where an overwrite needs new space.

:func:`write_text_atomically` is the same promise for text outputs: a temporary file in the
target's folder, renamed over the target only when complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from swapprobe.errors import DiskFullError

__all__ = ["GuardedFile", "is_disk_full", "write_text_atomically"]

#: errors that mean "no room": the disk is full, or the user's quota is used up
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is an out-of-space ``OSError``."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in _FULL:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class GuardedFile:
    """A read-write file for ``h5py.File(fileobj)`` that keeps its last flushed state on disk.

    A write the disk refuses is recorded in ``failure``, not raised; check it after flushing.

    It also holds an exclusive ``flock`` while open, as HDF5's own driver does for a writer, so
    other processes cannot open the store meanwhile (HDF5 takes a shared ``flock`` to read).

    Attributes:
        failure: the first write error, after which the file ignores writes; None while healthy.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool) -> None:
        """Open ``path`` for writing (``create``: a new file, refusing an existing one).

        Raises:
            FileExistsError: ``create`` and the file exists.
            BlockingIOError: another process holds a lock on the file.
        """
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        self._fd = os.open(path, flags, 0o666)
        try:
            _lock(self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        self._committed = os.fstat(self._fd).st_size
        self._size = self._committed  # what HDF5 sees as the end of the file
        self._held: list[tuple[int, bytes]] = []  # writes over the committed part, in order
        self._position = 0
        self.failure: OSError | None = None

    # --- the file protocol h5py's fileobj driver uses ------------------------------------
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")
        data = self._read(self._position, len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        count = max(0, self._size - self._position) if size < 0 else size
        data = self._read(self._position, count)
        self._position += len(data)
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        start = self._position
        self._position += len(chunk)
        if self.failure is not None:
            return len(chunk)  # the state on disk is the last committed one; keep it so
        split = max(0, min(len(chunk), self._committed - start))
        if split:
            self._held.append((start, chunk[:split]))
        if split < len(chunk):
            self._guard(lambda: os.pwrite(self._fd, chunk[split:], start + split))
        self._size = max(self._size, start + len(chunk))
        return len(chunk)

    def truncate(self, size: int | None = None) -> int:
        """Set the end of the file HDF5 sees; the disk follows at the next commit."""
        if self.failure is None:
            self._size = self._position if size is None else size
        return self._size

    def flush(self) -> None:
        """HDF5 calls this at the end of every flush, when the file is whole: commit."""
        if self.failure is not None:
            return
        self._guard(self._commit)

    def close(self) -> None:
        """Release the lock and the file; the disk keeps the last committed state."""
        if self._fd < 0:
            return
        try:
            if self.failure is not None:
                os.ftruncate(self._fd, self._committed)
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    # --- internals -----------------------------------------------------------------------
    def _read(self, offset: int, count: int) -> bytes:
        count = max(0, min(count, self._size - offset))
        data = bytearray()
        if count and self._fd >= 0:
            data = bytearray(os.pread(self._fd, count, offset))
        data.extend(bytes(count - len(data)))  # a hole or space not yet on disk reads as zeros
        for start, held in self._held:
            lo, hi = max(start, offset), min(start + len(held), offset + count)
            if lo < hi:
                data[lo - offset : hi - offset] = held[lo - start : hi - start]
        return bytes(data)

    def _commit(self) -> None:
        if self._size > self._committed:
            # allocate all new space (holes included) first: this is where a full disk fails,
            # while the committed bytes are still untouched
            _allocate(self._fd, self._committed, self._size - self._committed)
        for start, held in self._held:
            os.pwrite(self._fd, held, start)
        if os.fstat(self._fd).st_size != self._size:
            os.ftruncate(self._fd, self._size)
        self._held.clear()
        self._committed = self._size

    def _guard(self, action: Callable[[], object]) -> None:
        """Run a disk write; on failure give the new space back, ignore later writes, and
        record the error in ``failure`` (raising it into HDF5 would tear its state)."""
        try:
            action()
        except OSError as error:
            self.failure = error
            self._held.clear()
            with contextlib.suppress(OSError):  # the committed bytes are untouched either way
                os.ftruncate(self._fd, self._committed)


def _lock(fd: int) -> None:
    """An exclusive ``flock``, as HDF5 takes for a writer, and honouring the variable it reads:
    ``HDF5_USE_FILE_LOCKING=FALSE`` takes none, ``BEST_EFFORT`` goes on where the filesystem
    has no locks.

    Raises:
        BlockingIOError: another process holds a lock on the file.
    """
    setting = os.environ.get("HDF5_USE_FILE_LOCKING", "").upper()
    if setting == "FALSE":
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as error:
        if setting != "BEST_EFFORT" or error.errno not in _NO_LOCKS:
            raise


#: what a filesystem without ``flock`` says
_NO_LOCKS = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP})


def _allocate(fd: int, offset: int, length: int) -> None:
    """Reserve ``length`` bytes at ``offset`` (a full disk fails here, before any overwrite);
    where the filesystem cannot reserve, just extend the file."""
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as error:
        if error.errno in _FULL:
            raise
        if os.fstat(fd).st_size < offset + length:
            os.ftruncate(fd, offset + length)


def write_text_atomically(path: str | os.PathLike[str], write: Callable[[object], None]) -> None:
    """Write a text file whole or not at all: ``write(handle)`` fills a temporary file beside
    ``path``, which then replaces ``path``; on any failure the temporary file is removed.

    Raises:
        DiskFullError: the disk (or quota) filled up; ``path`` is left as it was.
    """
    target = Path(path)
    if target.exists() and not target.is_file():  # /dev/null, a FIFO: not ours to replace
        with open(target, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if is_disk_full(error):
            raise DiskFullError(
                f"disk full: could not write {target} ({os.strerror(errno.ENOSPC)}); "
                "free space and run again"
            ) from error
        raise
