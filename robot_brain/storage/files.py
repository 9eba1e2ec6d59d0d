"""Crash-safe file primitives for the data root: atomic replace, durable append, an fcntl lock.

A crash (``kill -9``, power loss, full disk) at any instant must leave every file either as it
was or as intended, never half-written: whole-file writes go to a temporary file in the same
folder, are fsync'ed, renamed over the target (atomic on POSIX) and the folder is fsync'ed;
appends are a single ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``. Writers
that read-modify-write a shared file hold :func:`exclusive_lock` around the whole cycle.

Errors the user can cause or fix (corrupt JSON, an unreadable file, a full disk) become a
:class:`DataFileError` whose one-line message names the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robot_brain.errors import UserError


class DataFileError(UserError):
    """A file under the data root is missing, unreadable, corrupt or cannot be written."""


def _reason(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)


def fsync_directory(folder: Path) -> None:
    """Make a rename or a file creation in ``folder`` durable (a no-op where unsupported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A unique hidden name beside ``path`` (same folder, so a rename onto ``path`` is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Make a file's content durable (written by a library that does not fsync: pyarrow, PyAV, rosbags)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the old content survives any failure.

    ``mode`` is the new file's permission bits, set exactly whatever the umask (``0o600`` for
    files only the owner may read). A failure to write is a :class:`DataFileError` naming the file.
    """
    target = Path(path)
    temporary = temporary_sibling(target)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise DataFileError(f"cannot write {target}: {_reason(error)} (the previous version is unchanged)") from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(target.parent)


def create_secret_file(path: Path, data: bytes, *, what: str) -> None:
    """Create ``path`` holding ``data``, mode 0600, durably; never over an existing file (a key is never replaced).

    A file that appears meanwhile (another process made it) or cannot be created is a
    :class:`DataFileError` naming ``what``.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError as error:
        raise DataFileError(f"{path}: appeared while creating {what}; try again") from error
    except OSError as error:
        raise DataFileError(f"cannot create {what} {path}: {error.strerror or error}") from error
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    fsync_directory(path.parent)


def dump_json_bytes(document: Any) -> bytes:
    """Stable, readable JSON (sorted keys, two-space indent, trailing newline; NaN refused)."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def atomic_write_json(path: str | os.PathLike[str], document: Any, *, mode: int = 0o644) -> None:
    """:func:`atomic_write_bytes` of ``document`` as stable JSON."""
    atomic_write_bytes(path, dump_json_bytes(document), mode=mode)


def read_json_file(path: str | os.PathLike[str], *, what: str = "a JSON file",
                   error: type[UserError] | None = None) -> Any:
    """Parse a JSON file; a missing, unreadable or corrupt file is an ``error`` naming it.

    ``what`` names the file in the message (``"the consent registry"``); ``error`` is the
    :class:`UserError` subclass to raise (:class:`DataFileError` unless a format has its own).
    """
    failure = error or DataFileError
    source = Path(path)
    as_json = "" if "JSON" in what else " as JSON"
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError as cause:
        raise failure(f"{source}: expected {what}, found no file") from cause
    except UnicodeDecodeError as cause:
        raise failure(f"{source}: expected {what}{as_json} in UTF-8, found undecodable bytes") from cause
    except OSError as cause:
        raise failure(f"{source}: cannot read {what}: {_reason(cause)}") from cause
    try:
        return json.loads(text)
    except json.JSONDecodeError as cause:
        found = "an empty file" if not text.strip() else f"{cause.msg} at line {cause.lineno} column {cause.colno}"
        raise failure(f"{source}: expected {what}{as_json}, found {found}") from cause


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def append_line_durable(path: str | os.PathLike[str], line: bytes, *, mode: int = 0o600) -> None:
    """Append one line (``line`` must end with ``\\n``) with a single write, then fsync it.

    One ``write`` on an ``O_APPEND`` descriptor never interleaves with another appender's, and
    the fsync makes the line survive a crash before this returns. A failed or short write (full
    disk) is cut off again and raises :class:`DataFileError`; the lines before it are untouched.
    Callers that append concurrently to one file hold a lock (the truncation assumes no other
    appender is mid-write).
    """
    target = Path(path)
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        raise ValueError("append_line_durable: expected exactly one line ending with a newline")
    created = not target.exists()
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    except OSError as error:
        raise DataFileError(f"cannot open {target} for appending: {_reason(error)}") from error
    try:
        size_before = os.fstat(descriptor).st_size
        try:
            written = os.write(descriptor, line)
            if written != len(line):
                raise DataFileError(
                    f"cannot append to {target}: only {written} of {len(line)} bytes were written (disk full?)"
                )
            os.fsync(descriptor)
        except (OSError, DataFileError):
            # Never leave a torn line behind: the lines before it must stay a valid log.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, size_before)
                os.fsync(descriptor)
            raise
    except OSError as error:
        raise DataFileError(f"cannot append to {target}: {_reason(error)}") from error
    finally:
        os.close(descriptor)
    if created:
        fsync_directory(target.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created 0600 when missing) for the ``with`` body.

    The lock belongs to this open file description, so it excludes other processes and other
    threads alike, and the kernel releases it when a holder dies (no stale lock after ``kill -9``).
    It is not re-entrant: code that already holds it must not take it again.
    """
    target = Path(lock_path)
    try:
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise DataFileError(f"cannot open lock file {target}: {_reason(error)}") from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
